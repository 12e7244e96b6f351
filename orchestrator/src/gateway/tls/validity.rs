//! When an X.509 certificate is valid: `notBefore` and `notAfter` read straight from its DER, as
//! unix seconds, so renewal can be decided without a full certificate parser.
//!
//! Only the path to `tbsCertificate.validity` is walked (RFC 5280 §4.1):
//! `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
//! signature, issuer, validity SEQUENCE { notBefore Time, notAfter Time }, ... }, ... }`, where
//! `Time` is `UTCTime` (`YYMMDDHHMMSSZ`, years 1950-2049) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`).
//!
//! Pure: no I/O, no clock. It deliberately does not verify signatures or anything else about the
//! certificate; rustls does that when the chain is used.

/// `notBefore` and `notAfter`, unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error("certificate DER is malformed: {0}")]
    Malformed(&'static str),
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION_TAG: u8 = 0xa0;

/// Reads the validity period of one DER-encoded certificate.
pub fn validity(der: &[u8]) -> Result<Validity, ValidityError> {
    let (tag, certificate, _) = read_tlv(der)?;
    expect(tag, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tag, tbs, _) = read_tlv(certificate)?;
    expect(tag, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs;
    let (tag, _, after) = read_tlv(rest)?;
    if tag == VERSION_TAG {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        let (_, _, after) = read_tlv(rest)?;
        rest = after;
    }
    let (tag, validity, _) = read_tlv(rest)?;
    expect(tag, SEQUENCE, "validity is not a SEQUENCE")?;
    let (tag, not_before, after) = read_tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = read_tlv(after)?;
    let not_after = time(tag, not_after)?;
    Ok(Validity { not_before, not_after })
}

fn expect(tag: u8, wanted: u8, message: &'static str) -> Result<(), ValidityError> {
    if tag == wanted {
        Ok(())
    } else {
        Err(ValidityError::Malformed(message))
    }
}

/// One tag-length-value: (tag, contents, what follows). Only single-byte tags occur on this path.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), ValidityError> {
    let truncated = ValidityError::Malformed("truncated");
    let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
    let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let n_bytes = usize::from(first & 0x7f);
        if n_bytes == 0 || n_bytes > 4 || rest.len() < n_bytes {
            return Err(ValidityError::Malformed("bad length"));
        }
        let length = rest[..n_bytes].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n_bytes..];
        length
    };
    if rest.len() < length {
        return Err(truncated);
    }
    Ok((tag, &rest[..length], &rest[length..]))
}

fn time(tag: u8, text: &[u8]) -> Result<i64, ValidityError> {
    let bad = ValidityError::Malformed("bad time");
    let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
    let text = text.strip_suffix('Z').ok_or(bad.clone())?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect("checked to be digits") };
    let (year, rest_at) = match (tag, text.len()) {
        (UTC_TIME, 12) => {
            let short = number(0..2);
            (if short < 50 { 2000 + short } else { 1900 + short }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0..4), 4),
        _ => return Err(bad),
    };
    let at = |offset: usize| number(rest_at + offset..rest_at + offset + 2);
    let (month, day, hour, minute, second) = (at(0), at(2), at(4), at(6), at(8));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
/// Worked example: 2000-03-01 is day 11_017 (checked in `civil_dates_count_days_from_the_epoch`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate made with `openssl req -x509 -days 30 -subj /CN=validity.test`;
    /// `openssl x509 -noout -dates` says notBefore=Dec  5 18:51:49 2026 GMT,
    /// notAfter=Jan  4 18:51:49 2027 GMT.
    const CERT_PEM: &str = include_str!("testdata/validity.pem");

    fn der() -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).expect("test certificate").to_vec()
    }

    #[test]
    fn civil_dates_count_days_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 5), 20_792);
    }

    #[test]
    fn reads_not_before_and_not_after_of_a_real_certificate() {
        let validity = validity(&der()).expect("parses");
        // 2026-12-05T18:51:49Z and 2027-01-04T18:51:49Z.
        assert_eq!(validity.not_before, 20_792 * 86_400 + 18 * 3600 + 51 * 60 + 49);
        assert_eq!(validity.not_after - validity.not_before, 30 * 86_400);
    }

    #[test]
    fn both_time_encodings_are_read() {
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Ok(days_from_civil(2049, 12, 31) * 86_400 + 86_399));
        assert_eq!(time(UTC_TIME, b"500101000000Z"), Ok(days_from_civil(1950, 1, 1) * 86_400));
        assert_eq!(time(GENERALIZED_TIME, b"20500101000000Z"), Ok(days_from_civil(2050, 1, 1) * 86_400));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let der = der();
        for cut in [0, 1, 2, 10, 100, der.len() - 1] {
            // A truncated outer SEQUENCE can still hold a whole validity; it must never panic.
            let _ = validity(&der[..cut]);
        }
        assert!(validity(&[]).is_err());
        assert!(validity(&[0x30, 0x82, 0xff]).is_err());
        assert!(time(UTC_TIME, b"2612051913Z").is_err());
        assert!(time(UTC_TIME, b"261305191345Z").is_err());
        assert!(time(GENERALIZED_TIME, b"261205191345Z").is_err());
    }
}
