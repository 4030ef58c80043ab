//! A client certificate's subject as the `x509` ACL scheme names it: ZooKeeper's
//! `X509AuthenticationProvider` takes `X500Principal.getName()`, Java's RFC 2253 form, so
//! an ACL written for ZooKeeper (`x509:CN=app,OU=ops,O=Example`) matches here too.
//! Sans-IO.

use super::der::{self, DerError};

/// The subject of a DER certificate, as Java's `X500Principal.getName()` writes it.
pub fn certificate_subject(certificate: &[u8]) -> Result<String, DerError> {
    let (certificate, _) = der::expect(certificate, der::TAG_SEQUENCE, "certificate is not a sequence")?;
    let (tbs, _) = der::expect(certificate.content, der::TAG_SEQUENCE, "tbsCertificate is not a sequence")?;
    let mut fields = tbs.content;
    let (first, rest) = der::read(fields)?;
    // The optional version [0], then serialNumber, signature, issuer and validity.
    let skip = if first.tag == der::TAG_CONTEXT_0 { 4 } else { 3 };
    fields = rest;
    for _ in 0..skip {
        fields = der::read(fields)?.1;
    }
    let (subject, _) = der::expect(fields, der::TAG_SEQUENCE, "subject is not a sequence")?;
    rfc2253_name(subject.content)
}

/// `X500Name.getRFC2253Name`: the RDNs last to first, joined by commas; the values of a
/// multi-valued RDN in their encoded order, joined by plus signs.
fn rfc2253_name(mut rdns: &[u8]) -> Result<String, DerError> {
    /// Names in certificates have a handful of RDNs; the bound keeps hostile input cheap.
    const RDNS_MAX: usize = 256;
    let mut names = Vec::new();
    while !rdns.is_empty() {
        if names.len() == RDNS_MAX {
            return Err(DerError("too many RDNs"));
        }
        let (rdn, rest) = der::expect(rdns, der::TAG_SET, "RDN is not a set")?;
        rdns = rest;
        let mut values = Vec::new();
        let mut attributes = rdn.content;
        while !attributes.is_empty() {
            let (attribute, rest) = der::expect(attributes, der::TAG_SEQUENCE, "attribute is not a sequence")?;
            attributes = rest;
            values.push(attribute_text(attribute.content)?);
        }
        if values.is_empty() {
            return Err(DerError("empty RDN"));
        }
        names.push(values.join("+"));
    }
    names.reverse();
    Ok(names.join(","))
}

/// `AVA.toRFC2253String`: a keyword where RFC 2253 has one, else the dotted OID with the
/// value's whole encoding in lowercase hex.
fn attribute_text(attribute: &[u8]) -> Result<String, DerError> {
    let (oid, rest) = der::expect(attribute, der::TAG_OID, "attribute type is not an OID")?;
    let (value, _) = der::read(rest)?;
    let oid = der::oid_text(oid.content)?;
    match rfc2253_keyword(&oid) {
        Some(keyword) if is_directory_string(value.tag) => Ok(format!("{keyword}={}", escaped(value.content))),
        keyword => {
            let hex: String = value.encoding.iter().map(|byte| format!("{byte:02x}")).collect();
            Ok(format!("{}=#{hex}", keyword.map_or(oid.as_str(), |keyword| keyword)))
        }
    }
}

/// The keywords Java writes in RFC 2253 names (`AVAKeyword`'s RFC 2253-compliant ones).
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// `AVA.isDerString(value, false)`: UTF8String, PrintableString, T61String, IA5String,
/// GeneralString and BMPString are written as text.
fn is_directory_string(tag: u8) -> bool {
    matches!(tag, 0x0C | 0x13 | 0x14 | 0x16 | 0x1B | 0x1E)
}

/// The value as Java escapes it: its bytes read as UTF-8 (whatever the string type, as
/// `new String(value.getDataBytes(), "UTF8")` does), a backslash before each of
/// `,=+<>#;"\`, NUL as `\00`, and a backslash before each leading or trailing space or CR.
fn escaped(bytes: &[u8]) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let text = String::from_utf8_lossy(bytes);
    let mut inner: Vec<String> = Vec::with_capacity(text.len());
    for character in text.chars() {
        inner.push(match character {
            '\0' => "\\00".to_owned(),
            c if ESCAPEES.contains(c) => format!("\\{c}"),
            c => c.to_string(),
        });
    }
    let is_blank = |piece: &String| piece == " " || piece == "\r";
    let lead = inner.iter().take_while(|piece| is_blank(piece)).count();
    let trail = inner.iter().rev().take_while(|piece| is_blank(piece)).count();
    let count = inner.len();
    inner
        .iter()
        .enumerate()
        .map(|(index, piece)| if index < lead || index >= count - trail { format!("\\{piece}") } else { piece.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 0x80, "short form only in these tests");
        let mut bytes = vec![tag, content.len() as u8];
        bytes.extend_from_slice(content);
        bytes
    }

    fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        element(0x30, &[element(0x06, oid), element(tag, value)].concat())
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0A];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const EMAIL: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01];

    /// A certificate whose subject holds `rdns`, with a version and placeholder fields.
    fn certificate(rdns: &[Vec<u8>]) -> Vec<u8> {
        let version = element(0xA0, &element(0x02, &[2]));
        let serial = element(0x02, &[1]);
        let algorithm = element(0x30, &element(0x06, &[0x2A, 0x03]));
        let issuer = element(0x30, &element(0x31, &attribute(CN, 0x0C, b"ca")));
        let validity = element(0x30, &[]);
        let subject = element(0x30, &rdns.iter().map(|rdn| element(0x31, rdn)).collect::<Vec<_>>().concat());
        let tbs = element(0x30, &[version, serial, algorithm, issuer, validity, subject].concat());
        element(0x30, &tbs)
    }

    #[test]
    fn the_subject_is_written_most_specific_rdn_first() {
        let cert =
            certificate(&[attribute(C, 0x13, b"US"), attribute(O, 0x0C, b"Example"), attribute(CN, 0x0C, b"client")]);
        assert_eq!(certificate_subject(&cert).unwrap(), "CN=client,O=Example,C=US");
    }

    #[test]
    fn special_characters_and_edge_spaces_are_escaped_as_java_escapes_them() {
        let cert = certificate(&[attribute(CN, 0x0C, b" a,b=c+d#e\"f\\g;h<i> ")]);
        assert_eq!(certificate_subject(&cert).unwrap(), "CN=\\ a\\,b\\=c\\+d\\#e\\\"f\\\\g\\;h\\<i\\>\\ ");
    }

    #[test]
    fn attributes_without_an_rfc2253_keyword_are_a_dotted_oid_and_hex() {
        let cert = certificate(&[attribute(EMAIL, 0x16, b"a@b"), attribute(CN, 0x0C, b"x")]);
        assert_eq!(certificate_subject(&cert).unwrap(), "CN=x,1.2.840.113549.1.9.1=#1603614062");
    }

    #[test]
    fn a_multi_valued_rdn_is_joined_with_plus() {
        let rdn = [attribute(CN, 0x0C, b"a"), attribute(O, 0x0C, b"b")].concat();
        assert_eq!(certificate_subject(&certificate(&[rdn])).unwrap(), "CN=a+O=b");
    }

    #[test]
    fn a_certificate_without_a_version_field_is_read_too() {
        let mut cert = certificate(&[attribute(CN, 0x0C, b"v1")]);
        // Drop the 5-byte version element from the tbsCertificate and fix both lengths.
        cert.drain(4..9);
        cert[1] -= 5;
        cert[3] -= 5;
        assert_eq!(certificate_subject(&cert).unwrap(), "CN=v1");
    }

    /// The fuzz corpus's certificates (made by openssl), with the names Java 17's
    /// `X509Certificate.getSubjectX500Principal().getName()` gave for them.
    #[test]
    fn real_certificates_are_named_as_java_names_them() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/certificate_subject");
        for (file, java_name) in [
            ("admin.der", "CN=admin,O=Ringkeeper"),
            ("client.der", "CN=client,OU=test,O=Ringkeeper"),
            ("email_multivalued.der", "UID=u1,DC=example,CN=x+OU=y,1.2.840.113549.1.9.1=#16056140622e63"),
            ("expired.der", "O=Ringkeeper,CN=expired"),
            ("escaped_and_numeric.der", "2.5.4.12=#0c0154,2.5.4.5=#1303313233,C=US,L=L,ST=S,CN=\\ lead\\#x\\,y\\=z"),
        ] {
            let der = std::fs::read(corpus.join(file)).unwrap();
            assert_eq!(certificate_subject(&der).unwrap(), java_name, "{file}");
        }
    }

    #[test]
    fn malformed_certificates_are_errors_not_panics() {
        let cert = certificate(&[attribute(CN, 0x0C, b"client")]);
        for length in 0..cert.len() {
            let _ = certificate_subject(&cert[..length]);
        }
        assert!(certificate_subject(&[0x30, 0x00]).is_err());
    }
}
