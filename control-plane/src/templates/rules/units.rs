//! A small, explicit table of UCUM units that clinical forms use, and conversions between
//! units of one dimension. Anything outside the table is refused as unknown rather than
//! guessed at: a weight in "stone" or a glucose in mg/dL against a mmol/L bound (which needs
//! a molar mass) is a clear issue, never a silently wrong number.
//!
//! Each unit maps to a dimension and an affine map onto the dimension's base unit:
//! `base = value * scale + offset` (the offset is only non-zero for temperatures).

use thiserror::Error;

/// Why two units do not convert.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    #[error("unknown unit {0:?} (not in the supported UCUM table)")]
    Unknown(String),
    #[error("unit {from:?} does not convert to {to:?} (different dimensions)")]
    Incompatible { from: String, to: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Mass,
    Length,
    Temperature,
    Pressure,
    Rate,
    Volume,
    Duration,
    MassConcentration,
    MolarConcentration,
    Ratio,
    AreaDensity,
}

/// (UCUM code, dimension, scale to base, offset to base).
const TABLE: &[(&str, Dimension, f64, f64)] = {
    use Dimension::*;
    &[
        // Mass, base gram.
        ("g", Mass, 1.0, 0.0),
        ("kg", Mass, 1000.0, 0.0),
        ("mg", Mass, 1e-3, 0.0),
        ("ug", Mass, 1e-6, 0.0),
        ("[lb_av]", Mass, 453.592_37, 0.0),
        ("[oz_av]", Mass, 28.349_523_125, 0.0),
        // Length, base metre.
        ("m", Length, 1.0, 0.0),
        ("cm", Length, 1e-2, 0.0),
        ("mm", Length, 1e-3, 0.0),
        ("km", Length, 1e3, 0.0),
        ("[in_i]", Length, 0.0254, 0.0),
        ("[ft_i]", Length, 0.3048, 0.0),
        // Temperature, base degree Celsius.
        ("Cel", Temperature, 1.0, 0.0),
        ("K", Temperature, 1.0, -273.15),
        ("[degF]", Temperature, 5.0 / 9.0, -32.0 * 5.0 / 9.0),
        // Pressure, base millimetre of mercury.
        ("mm[Hg]", Pressure, 1.0, 0.0),
        ("kPa", Pressure, 1.0 / 0.133_322_387_415, 0.0),
        ("cm[H2O]", Pressure, 0.098_066_5 / 0.133_322_387_415, 0.0),
        // Counts per time, base per minute.
        ("/min", Rate, 1.0, 0.0),
        ("{beats}/min", Rate, 1.0, 0.0),
        ("{breaths}/min", Rate, 1.0, 0.0),
        ("/s", Rate, 60.0, 0.0),
        ("/h", Rate, 1.0 / 60.0, 0.0),
        // Volume, base litre.
        ("L", Volume, 1.0, 0.0),
        ("l", Volume, 1.0, 0.0),
        ("dL", Volume, 0.1, 0.0),
        ("mL", Volume, 1e-3, 0.0),
        // Duration, base second.
        ("s", Duration, 1.0, 0.0),
        ("min", Duration, 60.0, 0.0),
        ("h", Duration, 3600.0, 0.0),
        ("d", Duration, 86_400.0, 0.0),
        ("wk", Duration, 604_800.0, 0.0),
        // Mass concentration, base gram per litre.
        ("g/L", MassConcentration, 1.0, 0.0),
        ("g/dL", MassConcentration, 10.0, 0.0),
        ("mg/dL", MassConcentration, 1e-2, 0.0),
        ("mg/L", MassConcentration, 1e-3, 0.0),
        // Molar concentration, base millimole per litre.
        ("mmol/L", MolarConcentration, 1.0, 0.0),
        ("umol/L", MolarConcentration, 1e-3, 0.0),
        // Dimensionless.
        ("%", Ratio, 1.0, 0.0),
        ("1", Ratio, 100.0, 0.0),
        // Body mass index.
        ("kg/m2", AreaDensity, 1.0, 0.0),
    ]
};

fn lookup(unit: &str) -> Result<(Dimension, f64, f64), UnitError> {
    TABLE
        .iter()
        .find(|(code, ..)| *code == unit)
        .map(|&(_, dim, scale, offset)| (dim, scale, offset))
        .ok_or_else(|| UnitError::Unknown(unit.to_owned()))
}

/// Whether the table knows `unit` (UCUM codes are case-sensitive: `Cel`, not `cel`).
pub fn is_known(unit: &str) -> bool {
    lookup(unit).is_ok()
}

/// The map `to_value = from_value * scale + offset` from one unit to another, computed once
/// (for a compiled rule) and applied to many answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    scale: f64,
    offset: f64,
}

impl Conversion {
    pub const IDENTITY: Conversion = Conversion {
        scale: 1.0,
        offset: 0.0,
    };

    /// Converts `from` into `to`; same codes are the identity, even outside the table.
    pub fn between(from: &str, to: &str) -> Result<Conversion, UnitError> {
        if from == to {
            return Ok(Self::IDENTITY);
        }
        let (fd, fs, fo) = lookup(from)?;
        let (td, ts, to_off) = lookup(to)?;
        if fd != td {
            return Err(UnitError::Incompatible {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        // base = v*fs + fo; v' = (base - to_off) / ts.
        Ok(Conversion {
            scale: fs / ts,
            offset: (fo - to_off) / ts,
        })
    }

    /// Applies the conversion. The result is rounded to 9 decimal places so that binary
    /// fractions do not push a converted value across an inclusive bound (2500 mm is
    /// exactly 250 cm, not 250.00000000000003).
    pub fn apply(self, value: f64) -> f64 {
        if self == Self::IDENTITY {
            return value;
        }
        round9(value * self.scale + self.offset)
    }
}

fn round9(v: f64) -> f64 {
    let r = (v * 1e9).round() / 1e9;
    if r.is_finite() {
        r
    } else {
        v
    }
}

/// Converts one value between two units.
pub fn convert(value: f64, from: &str, to: &str) -> Result<f64, UnitError> {
    Conversion::between(from, to).map(|c| c.apply(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn table_codes_are_unique() {
        for (i, (code, ..)) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|(c, ..)| c != code),
                "{code} twice"
            );
        }
    }

    #[test]
    fn mass_length_temperature_and_pressure_convert() {
        assert_eq!(convert(1500.0, "g", "kg"), Ok(1.5));
        assert_eq!(convert(2.0, "kg", "g"), Ok(2000.0));
        assert!(near(
            convert(180.0, "[lb_av]", "kg").expect("ok"),
            81.646_626_6
        ));
        assert_eq!(convert(2500.0, "mm", "cm"), Ok(250.0));
        assert_eq!(convert(172.0, "cm", "m"), Ok(1.72));
        assert_eq!(convert(98.6, "[degF]", "Cel"), Ok(37.0));
        assert_eq!(convert(37.0, "Cel", "[degF]"), Ok(98.6));
        assert_eq!(convert(310.15, "K", "Cel"), Ok(37.0));
        assert!(near(
            convert(16.0, "kPa", "mm[Hg]").expect("ok"),
            120.009_852_4
        ));
        assert_eq!(convert(1.0, "/s", "/min"), Ok(60.0));
        assert_eq!(convert(72.0, "{beats}/min", "/min"), Ok(72.0));
        assert_eq!(convert(100.0, "mg/dL", "g/L"), Ok(1.0));
    }

    #[test]
    fn same_code_is_identity_even_when_unknown() {
        assert_eq!(convert(3.0, "{puffs}", "{puffs}"), Ok(3.0));
    }

    #[test]
    fn unknown_and_incompatible_units_are_errors() {
        assert_eq!(
            convert(1.0, "stone", "kg"),
            Err(UnitError::Unknown("stone".into()))
        );
        assert_eq!(
            convert(1.0, "kg", "cel"),
            Err(UnitError::Unknown("cel".into()))
        );
        assert!(matches!(
            convert(1.0, "mm", "kg"),
            Err(UnitError::Incompatible { .. })
        ));
        // Glucose mass vs molar concentration needs a molar mass: refused, not guessed.
        assert!(matches!(
            convert(100.0, "mg/dL", "mmol/L"),
            Err(UnitError::Incompatible { .. })
        ));
    }
}
