//! The ESP-convention QR payload rendered for a terminal, printed at start for the phone apps.

pub use wifiprov_proto::qr::{QrPayload, QrTransport};

/// The payload as a QR code in text, two rows per character, with a quiet zone.
pub fn render(payload: &QrPayload<'_>) -> Option<String> {
    let code = qrcode::QrCode::new(payload.to_json().as_bytes()).ok()?;
    Some(code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_scannable_block() {
        let payload = QrPayload::new("PROV_X", None, None, QrTransport::Softap);
        assert!(render(&payload).is_some_and(|r| r.lines().count() > 10));
    }
}
