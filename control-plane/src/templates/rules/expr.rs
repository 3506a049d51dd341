//! The cross-field expression language: comparisons between two items, or an item and a
//! constant, combined with `and`, `or`, `not` and parentheses. Parsed by hand (recursive
//! descent) into a small tree; nothing is ever evaluated as code, and the size is bounded.
//!
//! ```text
//! expr     := or
//! or       := and (("or" | "||") and)*
//! and      := unary (("and" | "&&") unary)*
//! unary    := ("not" | "!") unary | "(" expr ")" | compare
//! compare  := operand ("<" | "<=" | ">" | ">=" | "==" | "=" | "!=") operand
//! operand  := linkId | `quoted linkId` | number | 'text' | "text" | true | false
//! ```
//!
//! A linkId is a letter or `_` followed by letters, digits, `_`, `.` or `-` (`bp.systolic`,
//! `sbp-1`); any other linkId (such as `1.2`) is written between backticks. Numbers are
//! decimal (`-3`, `37.5`), with no exponent.

use thiserror::Error;

/// Longest expression text, in characters.
pub const MAX_LEN: usize = 1000;
/// Most comparisons in one expression.
pub const MAX_COMPARISONS: usize = 64;
/// Deepest nesting of `not` and parentheses.
pub const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    /// Whether the operator needs an order (not just equality).
    pub fn is_ordered(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// The answers of the item with this linkId.
    Item(String),
    Number(f64),
    Text(String),
    Bool(bool),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Every linkId the expression reads, in order of appearance.
    pub fn link_ids(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |left, _, right| {
            for side in [left, right] {
                if let Operand::Item(id) = side {
                    out.push(id.as_str());
                }
            }
        });
        out
    }

    /// Calls `f` on every comparison.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Operand, CmpOp, &'a Operand)) {
        match self {
            Expr::Compare { left, op, right } => f(left, *op, right),
            Expr::Not(e) => e.visit(f),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
        }
    }
}

/// Why an expression does not parse: where (character offset) and what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at character {position}: {message}")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

fn error<T>(position: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        position,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Operand(Operand),
    Op(CmpOp),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c == '.' || c == '-' || c.is_alphanumeric()
}

fn lex(src: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let next = chars.get(i + 1).copied();
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::Open,
            ')' => Token::Close,
            '<' | '>' | '=' | '!' if next == Some('=') => {
                i += 1;
                Token::Op(match c {
                    '<' => CmpOp::Le,
                    '>' => CmpOp::Ge,
                    '=' => CmpOp::Eq,
                    _ => CmpOp::Ne,
                })
            }
            '<' => Token::Op(CmpOp::Lt),
            '>' => Token::Op(CmpOp::Gt),
            '=' => Token::Op(CmpOp::Eq),
            '!' => Token::Not,
            '&' | '|' if next == Some(c) => {
                i += 1;
                if c == '&' {
                    Token::And
                } else {
                    Token::Or
                }
            }
            '\'' | '"' => {
                let (text, end) = quoted(&chars, i, c)?;
                i = end;
                Token::Operand(Operand::Text(text))
            }
            '`' => {
                let (id, end) = quoted(&chars, i, '`')?;
                if id.is_empty() {
                    return error(start, "empty quoted linkId");
                }
                i = end;
                Token::Operand(Operand::Item(id))
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.') {
                    end += 1;
                }
                let text: String = chars[i..end].iter().collect();
                let Ok(n) = text.parse::<f64>() else {
                    return error(start, format!("{text:?} is not a number"));
                };
                i = end - 1;
                Token::Operand(Operand::Number(n))
            }
            c if is_ident_start(c) => {
                let mut end = i + 1;
                while end < chars.len() && is_ident_char(chars[end]) {
                    end += 1;
                }
                let word: String = chars[i..end].iter().collect();
                i = end - 1;
                match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "true" => Token::Operand(Operand::Bool(true)),
                    "false" => Token::Operand(Operand::Bool(false)),
                    _ => Token::Operand(Operand::Item(word)),
                }
            }
            other => return error(start, format!("unexpected character {other:?}")),
        };
        out.push((start, token));
        i += 1;
    }
    Ok(out)
}

/// Reads a quoted text starting at `chars[open]`; returns it and the index of the closing
/// quote. Backslash escapes the quote and itself.
fn quoted(chars: &[char], open: usize, quote: char) -> Result<(String, usize), ParseError> {
    let mut text = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if matches!(chars.get(i + 1), Some(&c) if c == quote || c == '\\') => {
                text.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((text, i)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    error(open, "unterminated quote")
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    depth: usize,
    comparisons: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(p, _)| *p)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return error(self.at(), format!("nested more than {MAX_DEPTH} deep"));
        }
        let expr = match self.peek() {
            Some(Token::Not) => {
                self.pos += 1;
                Expr::Not(Box::new(self.unary()?))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return error(self.at(), "expected ')'");
                }
                self.pos += 1;
                inner
            }
            _ => self.compare()?,
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.tokens.get(self.pos) {
            Some((_, Token::Operand(o))) => {
                let o = o.clone();
                self.pos += 1;
                Ok(o)
            }
            _ => error(self.at(), "expected a linkId or a constant"),
        }
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let start = self.at();
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => return error(self.at(), "expected a comparison (<, <=, >, >=, ==, !=)"),
        };
        self.pos += 1;
        let right = self.operand()?;
        if !matches!(left, Operand::Item(_)) && !matches!(right, Operand::Item(_)) {
            return error(start, "a comparison needs at least one linkId");
        }
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return error(start, format!("at most {MAX_COMPARISONS} comparisons"));
        }
        Ok(Expr::Compare { left, op, right })
    }
}

/// Parses an expression; the error names the character where it went wrong.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let len = src.chars().count();
    if len > MAX_LEN {
        return error(MAX_LEN, format!("at most {MAX_LEN} characters"));
    }
    let tokens = lex(src)?;
    if tokens.is_empty() {
        return error(0, "empty expression");
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: len,
        depth: 0,
        comparisons: 0,
    };
    let expr = parser.or()?;
    if parser.pos < parser.tokens.len() {
        return error(parser.at(), "unexpected text after the expression");
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> Operand {
        Operand::Item(id.into())
    }

    #[test]
    fn parses_comparisons_with_precedence() {
        assert_eq!(
            parse("diastolic < systolic").expect("ok"),
            Expr::Compare {
                left: item("diastolic"),
                op: CmpOp::Lt,
                right: item("systolic")
            }
        );
        let e = parse("a >= 1 or b == 'x' and not (c != true)").expect("ok");
        let Expr::Or(_, right) = e else {
            panic!("or binds loosest")
        };
        assert!(matches!(*right, Expr::And(_, _)));
        assert_eq!(
            parse("`1.2` <= -3.5 && bp.sys = \"it's\" || !x > y")
                .expect("ok")
                .link_ids(),
            ["1.2", "bp.sys", "x", "y"]
        );
        assert_eq!(parse("体温 > 37.5").expect("ok").link_ids(), ["体温"]);
    }

    #[test]
    fn rejects_bad_text_with_a_position() {
        for (src, pos) in [
            ("", 0),
            ("a <", 3),
            ("a < b c", 6),
            ("(a < b", 6),
            ("a ~ b", 2),
            ("1 < 2", 0),
            ("a < 'open", 4),
            ("a < 1.2.3", 4),
            ("a b", 2),
            ("and", 0),
        ] {
            let e = parse(src).expect_err(src);
            assert_eq!(e.position, pos, "{src}: {e}");
        }
    }

    #[test]
    fn size_is_bounded() {
        let deep = format!("{}a < b{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).is_err());
        let many = vec!["a < b"; 65].join(" and ");
        assert!(parse(&many).is_err());
        assert!(parse(&"a".repeat(1001)).is_err());
        let ok = vec!["a < b"; 64].join(" and ");
        assert!(parse(&ok).is_ok());
    }
}
