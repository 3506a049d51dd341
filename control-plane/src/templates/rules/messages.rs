//! The messages of the built-in checks, in Chinese and English. Built only when a check
//! fails, so valid records cost nothing here.

use super::spec::Message;
use super::units::UnitError;

pub fn unknown_link_id() -> Message {
    Message::new(
        "模板中没有此 linkId 对应的项目",
        "no item of the template has this linkId",
    )
}

pub fn no_answers() -> Message {
    Message::new(
        "分组和说明项目不接受答案",
        "group and display items take no answers",
    )
}

pub fn duplicate() -> Message {
    Message::new(
        "该项目在病历中重复出现",
        "the item is listed more than once",
    )
}

pub fn disabled() -> Message {
    Message::new(
        "该项目的启用条件未满足（已禁用），不应填写",
        "the item is disabled by its enable_when and must not be answered",
    )
}

pub fn required() -> Message {
    Message::new(
        "已完成的病历必须填写此项目",
        "a completed record must answer this item",
    )
}

pub fn repeats(n: usize) -> Message {
    Message::new(
        format!("该项目不可重复，但提供了 {n} 个答案"),
        format!("the item does not repeat but has {n} answers"),
    )
}

pub fn wrong_type(kind: &str, item_type: &str) -> Message {
    Message::new(
        format!("{kind} 类型的答案不适用于 {item_type} 类型的项目"),
        format!("a {kind} answer does not fit a {item_type} item"),
    )
}

pub fn not_of_kind(kind: &str) -> Message {
    Message::new(
        format!("答案必须是 {kind} 类型"),
        format!("the answer must be of type {kind}"),
    )
}

pub fn not_an_option() -> Message {
    Message::new(
        "答案不在该项目的可选项中",
        "the answer is not one of the item's options",
    )
}

pub fn below(bound: &str) -> Message {
    Message::new(
        format!("答案低于最小值 {bound}"),
        format!("the answer is below the minimum {bound}"),
    )
}

pub fn above(bound: &str) -> Message {
    Message::new(
        format!("答案高于最大值 {bound}"),
        format!("the answer is above the maximum {bound}"),
    )
}

pub fn incomparable() -> Message {
    Message::new(
        "答案无法与界限比较，请使用该项目的单位",
        "the answer cannot be compared with the bound; use the item's unit",
    )
}

pub fn unit(e: &UnitError) -> Message {
    let zh = match e {
        UnitError::Unknown(u) => format!("不支持的单位 {u:?}（不在 UCUM 单位表中）"),
        UnitError::Incompatible { from, to } => {
            format!("单位 {from:?} 无法换算为 {to:?}（量纲不同）")
        }
    };
    Message::new(zh, e.to_string())
}

pub fn no_unit() -> Message {
    Message::new(
        "答案缺少单位，无法与带单位的范围比较",
        "the answer has no unit to compare with the range's unit",
    )
}

pub fn decimal_places(places: u32) -> Message {
    Message::new(
        format!("最多 {places} 位小数"),
        format!("at most {places} decimal places"),
    )
}

pub fn too_long(max: u32) -> Message {
    Message::new(
        format!("最多 {max} 个字符"),
        format!("at most {max} characters"),
    )
}

pub fn too_short(min: u32) -> Message {
    Message::new(
        format!("至少 {min} 个字符"),
        format!("at least {min} characters"),
    )
}

pub fn pattern() -> Message {
    Message::new(
        "答案不符合该项目要求的格式",
        "the answer does not match the item's pattern",
    )
}

pub fn broken(reason: &str) -> Message {
    Message::new(
        format!("验证规则无法执行：{reason}"),
        format!("the validation rule cannot run: {reason}"),
    )
}
