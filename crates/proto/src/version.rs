//! The `proto-ver` reply: version and capabilities as JSON.
//!
//! Devices print it the way ESP's cJSON does (tab indentation, `":\t"`, arrays on one line, app-info labels
//! before `"prov"`), byte for byte, so anything that fingerprints the reply sees an ESP device. Clients parse any
//! JSON layout, and tolerate the plain version strings of very old firmware.

use std::fmt::Write as _;

use crate::security::DeviceSecurity;

/// The provisioning protocol version every wifi_prov_mgr device reports.
pub const PROV_VERSION: &str = "v1.1";

/// Capability: the device can scan for networks (`prov-scan`).
pub const CAP_WIFI_SCAN: &str = "wifi_scan";
/// Capability: security 0, no handshake needed.
pub const CAP_NO_SEC: &str = "no_sec";
/// Capability: security 1 without a proof of possession.
pub const CAP_NO_POP: &str = "no_pop";

/// The `"prov"` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvInfo {
    /// Protocol version, `"v1.1"`.
    pub ver: String,
    /// Security scheme number; absent on firmware older than IDF 5.0.
    pub sec_ver: Option<u64>,
    /// Security 2 nonce rule; absent before the 2025 fix (means 0).
    pub sec_patch_ver: Option<u64>,
    /// Capabilities, in order.
    pub cap: Vec<String>,
}

/// An application label (`wifi_prov_mgr_set_app_info`): printed before `"prov"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// The JSON key.
    pub label: String,
    /// The application's version string.
    pub ver: String,
    /// The application's capabilities.
    pub cap: Vec<String>,
}

/// The whole `proto-ver` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Application labels, in the order they were added.
    pub app_info: Vec<AppInfo>,
    /// The provisioning object; `None` for a reply that is not JSON (very old firmware prints just a version).
    pub prov: Option<ProvInfo>,
}

/// `proto-ver` could not be parsed as JSON of the expected shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The reply is not UTF-8 text.
    #[error("proto-ver reply is not text")]
    NotText,
    /// The reply is JSON but a field has the wrong type.
    #[error("proto-ver field {field} has the wrong type")]
    WrongType {
        /// Dotted path of the field.
        field: String,
    },
}

impl ProvInfo {
    /// What a device with `security` reports, like wifi_prov_mgr: `no_sec` or `no_pop`, then `wifi_scan`.
    pub fn for_device(security: &DeviceSecurity) -> Self {
        let mut cap = Vec::new();
        match security.version() {
            crate::security::SecurityVersion::Sec0 => cap.push(CAP_NO_SEC.to_owned()),
            _ if security.advertises_no_pop() => cap.push(CAP_NO_POP.to_owned()),
            _ => {}
        }
        cap.push(CAP_WIFI_SCAN.to_owned());
        Self {
            ver: PROV_VERSION.to_owned(),
            sec_ver: Some(security.version().number().into()),
            sec_patch_ver: Some(security.patch_level().into()),
            cap,
        }
    }

    /// Whether the capability list contains `cap`.
    pub fn has_cap(&self, cap: &str) -> bool {
        self.cap.iter().any(|c| c == cap)
    }
}

impl VersionInfo {
    /// Serialises exactly as ESP's `cJSON_Print` does.
    pub fn to_cjson(&self) -> String {
        let mut out = String::from("{\n");
        let mut members: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        for app in &self.app_info {
            members.push((&app.label, vec![("ver", Value::Str(&app.ver)), ("cap", Value::Strs(&app.cap))]));
        }
        if let Some(prov) = &self.prov {
            let mut fields = vec![("ver", Value::Str(&prov.ver))];
            if let Some(v) = prov.sec_ver {
                fields.push(("sec_ver", Value::Int(v)));
            }
            if let Some(v) = prov.sec_patch_ver {
                fields.push(("sec_patch_ver", Value::Int(v)));
            }
            fields.push(("cap", Value::Strs(&prov.cap)));
            members.push(("prov", fields));
        }
        let count = members.len();
        for (i, (label, fields)) in members.into_iter().enumerate() {
            out.push('\t');
            push_string(&mut out, label);
            out.push_str(":\t{\n");
            let n = fields.len();
            for (j, (key, value)) in fields.into_iter().enumerate() {
                out.push_str("\t\t");
                push_string(&mut out, key);
                out.push_str(":\t");
                match value {
                    Value::Str(s) => push_string(&mut out, s),
                    Value::Int(v) => {
                        let _ = write!(out, "{v}");
                    }
                    Value::Strs(items) => {
                        out.push('[');
                        for (k, item) in items.iter().enumerate() {
                            if k > 0 {
                                out.push_str(", ");
                            }
                            push_string(&mut out, item);
                        }
                        out.push(']');
                    }
                }
                out.push_str(if j + 1 < n { ",\n" } else { "\n" });
            }
            out.push_str(if i + 1 < count { "\t},\n" } else { "\t}\n" });
        }
        out.push('}');
        out
    }

    /// Parses a `proto-ver` reply of any JSON layout. A reply that is not JSON is kept as a bare version (its
    /// text is then compared against the expected version, as esp_prov does).
    pub fn parse(reply: &[u8]) -> Result<Self, VersionError> {
        let text = std::str::from_utf8(reply).map_err(|_| VersionError::NotText)?;
        let Ok(serde_json::Value::Object(root)) = serde_json::from_str::<serde_json::Value>(text) else {
            return Ok(Self {
                app_info: Vec::new(),
                prov: Some(ProvInfo {
                    ver: text.trim().to_owned(),
                    sec_ver: None,
                    sec_patch_ver: None,
                    cap: Vec::new(),
                }),
            });
        };
        let mut info = Self { app_info: Vec::new(), prov: None };
        for (label, value) in root {
            let serde_json::Value::Object(obj) = value else {
                // Unknown top-level scalars are not ours to interpret.
                continue;
            };
            let ver = match obj.get("ver") {
                None => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(_) => return Err(VersionError::WrongType { field: format!("{label}.ver") }),
            };
            let cap = string_array(&obj, &label, "cap")?;
            if label == "prov" {
                info.prov = Some(ProvInfo {
                    ver,
                    sec_ver: integer(&obj, &label, "sec_ver")?,
                    sec_patch_ver: integer(&obj, &label, "sec_patch_ver")?,
                    cap,
                });
            } else {
                info.app_info.push(AppInfo { label, ver, cap });
            }
        }
        Ok(info)
    }

    /// The application label `label`, if the device reports it.
    pub fn app(&self, label: &str) -> Option<&AppInfo> {
        self.app_info.iter().find(|a| a.label == label)
    }
}

enum Value<'a> {
    Str(&'a str),
    Int(u64),
    Strs(&'a [String]),
}

/// cJSON's string escaping: the two-character escapes it knows, `\u00XX` for other control characters, and
/// every other byte verbatim.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn integer(
    obj: &serde_json::Map<String, serde_json::Value>,
    label: &str,
    key: &str,
) -> Result<Option<u64>, VersionError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| VersionError::WrongType { field: format!("{label}.{key}") }),
    }
}

fn string_array(
    obj: &serde_json::Map<String, serde_json::Value>,
    label: &str,
    key: &str,
) -> Result<Vec<String>, VersionError> {
    let wrong = || VersionError::WrongType { field: format!("{label}.{key}") };
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(wrong)).collect()
        }
        Some(_) => Err(wrong()),
    }
}
