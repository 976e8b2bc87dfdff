//! Kubernetes resource quantities (`10M`, `1Gi`, `500k`, `1.5e6`), the format of the
//! `kubernetes.io/ingress-bandwidth` and `egress-bandwidth` pod annotations, parsed to an
//! integer rounded up, as `resource.Quantity.Value()` does (apimachinery `quantity.go`:
//! decimal SI suffixes n u m k M G T P E, binary SI Ki..Ei, or an `e`/`E` exponent).

/// Largest decimal or binary exponent accepted (keeps the arithmetic in `u128`).
const MAX_EXP: i32 = 30;

fn suffix(s: &str) -> Result<(i32, u32), String> {
    // (power of ten, power of two)
    Ok(match s {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exp = s
                .strip_prefix('e')
                .or_else(|| s.strip_prefix('E'))
                .ok_or_else(|| format!("unknown suffix {s:?}"))?;
            let e: i32 = exp
                .parse()
                .map_err(|_| format!("invalid exponent {exp:?}"))?;
            if e.abs() > MAX_EXP {
                return Err(format!("exponent {e} out of range"));
            }
            (e, 0)
        }
    })
}

/// Parse a non-negative quantity to its value rounded up to an integer.
pub fn parse(s: &str) -> Result<u128, String> {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    let num_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suf) = body.split_at(num_len);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err("not a number".to_owned());
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err("too many digits".to_owned());
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| "not a number".to_owned())?
    };
    let (exp10, exp2) = suffix(suf)?;
    let frac_len = i32::try_from(frac.len()).map_err(|_| "too many digits".to_owned())?;
    let exp10 = exp10 - frac_len;
    let too_large = || "too large".to_owned();
    let mut v = mantissa
        .checked_mul(1u128.checked_shl(exp2).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    if exp10 >= 0 {
        let p = 10u128
            .checked_pow(exp10.unsigned_abs())
            .ok_or_else(too_large)?;
        v = v.checked_mul(p).ok_or_else(too_large)?;
    } else {
        let p = 10u128
            .checked_pow(exp10.unsigned_abs())
            .ok_or_else(too_large)?;
        v = v.div_ceil(p);
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_round_up() {
        assert_eq!(parse("10M").unwrap(), 10_000_000);
        assert_eq!(parse("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse("500k").unwrap(), 500_000);
        assert_eq!(parse("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse("1e6").unwrap(), 1_000_000);
        assert_eq!(parse("2E3").unwrap(), 2000);
        assert_eq!(parse("100").unwrap(), 100);
        assert_eq!(parse("1500m").unwrap(), 2);
        assert_eq!(parse(".5k").unwrap(), 500);
        assert_eq!(parse("+3k").unwrap(), 3000);
        assert_eq!(parse("1P").unwrap(), 1_000_000_000_000_000);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "-1M", "M", "1.2.3", "10X", "1e", "1e99", "abc", "1 M"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
