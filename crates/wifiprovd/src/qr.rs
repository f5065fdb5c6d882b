//! The QR payload of ESP's provisioning apps (fact sheet §8.7) and its rendering on a terminal.

use serde::Serialize;

/// The transport the phone app should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QrTransport {
    /// Wi-Fi SoftAP / HTTP.
    Softap,
    /// Bluetooth LE.
    Ble,
}

/// `{"ver":"v1","name":…,"username":…,"pop":…,"transport":…}` in exactly this field order; `username` only
/// for security 2 and `pop` absent without a secret.
#[derive(Debug, Clone, Serialize)]
pub struct QrPayload<'a> {
    ver: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pop: Option<&'a str>,
    transport: QrTransport,
}

impl<'a> QrPayload<'a> {
    /// The payload for a device named `name`; `secret` is the PoP (security 1) or password (security 2).
    pub fn new(name: &'a str, username: Option<&'a str>, secret: Option<&'a str>, transport: QrTransport) -> Self {
        Self { ver: "v1", name, username, pop: secret, transport }
    }

    /// The JSON text encoded in the QR code.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The QR code as text for a terminal (two rows per character, with a quiet zone).
    pub fn render(&self) -> Option<String> {
        let code = qrcode::QrCode::new(self.to_json().as_bytes()).ok()?;
        Some(code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_matches_the_esp_apps() {
        let sec2 = QrPayload::new("PROV_123456", Some("wifiprov"), Some("abcd1234"), QrTransport::Softap);
        assert_eq!(
            sec2.to_json(),
            r#"{"ver":"v1","name":"PROV_123456","username":"wifiprov","pop":"abcd1234","transport":"softap"}"#
        );
        let sec1 = QrPayload::new("PROV_X", None, Some("pop"), QrTransport::Ble);
        assert_eq!(sec1.to_json(), r#"{"ver":"v1","name":"PROV_X","pop":"pop","transport":"ble"}"#);
        let sec0 = QrPayload::new("PROV_X", None, None, QrTransport::Softap);
        assert_eq!(sec0.to_json(), r#"{"ver":"v1","name":"PROV_X","transport":"softap"}"#);
        assert!(sec0.render().is_some_and(|r| r.lines().count() > 10));
    }
}
