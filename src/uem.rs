//! Workspace ONE UEM Event Notifications: the UEM POSTs an event (JSON, or
//! XML with root `Eventlog`) with Basic auth whenever a device changes.
//! This module reads one event and says what it means for device trust;
//! authenticating the call, idempotency and revoking are the service's.
//! No I/O here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest event body accepted.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// One event notification, as the UEM sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The UEM's id of this event: repeated deliveries carry the same one.
    pub event_id: String,
    /// Such as `MDM Enrollment Complete` or `Compliance Status Changed`.
    pub event_type: String,
    /// The UEM's device id.
    pub device_id: Option<String>,
    /// The device's UDID.
    pub udid: Option<String>,
    /// The device's serial number.
    pub serial_number: Option<String>,
    /// Such as `Enrolled` or `Unenrolled`.
    pub enrollment_status: Option<String>,
    /// Such as `Compliant` or `NonCompliant`.
    pub compliance_status: Option<String>,
    /// Such as `Compromised`, `NotCompromised`, `true` or `false`.
    pub compromised_status: Option<String>,
    /// The enrollment user's name (the UEM's `EnrollmentUserName`).
    pub user: Option<String>,
    /// The enrollment user's email address, when the UEM sends it.
    pub email: Option<String>,
    /// When the event happened.
    pub event_time: Option<SystemTime>,
    /// EventTime as sent, for [`Event::delivery_key`].
    pub event_time_text: Option<String>,
}

/// Why an event body cannot be read. The text names the problem; it is
/// the 400 answer's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Over [`MAX_EVENT_BYTES`].
    #[error("the event is over {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    /// Neither a JSON object nor XML with root `Eventlog`.
    #[error("the event is neither a JSON object nor XML with root Eventlog")]
    UnknownFormat,
    /// The JSON does not parse.
    #[error("the event is not valid JSON: {0}")]
    BadJson(String),
    /// The XML does not parse, or is not an `Eventlog`.
    #[error("the event is not valid Eventlog XML: {0}")]
    BadXml(String),
    /// A required field is missing or empty.
    #[error("the event has no {0}")]
    Missing(&'static str),
    /// A field has the wrong type (an object where text belongs).
    #[error("the event's {0} is not text or a number")]
    NotText(String),
    /// EventTime is neither ISO 8601 nor `/Date(ms)/`.
    #[error("the event's EventTime {0:?} is neither ISO 8601 nor /Date(ms)/")]
    BadTime(String),
}

/// What an event means for the sessions of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The device is no longer trusted: unenrolled, wiped, deleted,
    /// non-compliant or compromised. The user's sessions end.
    Untrusted,
    /// The device is (again) trusted: enrolled, compliant, not compromised.
    /// Nothing to do; counted.
    Trusted,
    /// An event type this gateway does not act on; acknowledged, counted
    /// and logged, never an error the UEM would retry.
    Ignored,
}

impl Effect {
    /// The metric label (`trustgate_uem_events_total{type}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Untrusted => "untrusted",
            Effect::Trusted => "trusted",
            Effect::Ignored => "ignored",
        }
    }
}

impl Event {
    /// Reads a body: JSON when it starts with `{`, XML when with `<`.
    pub fn parse(body: &[u8]) -> Result<Event, EventError> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge);
        }
        let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::from_json(text),
            Some(b'<') => Self::from_xml(text),
            _ => Err(EventError::UnknownFormat),
        }
    }

    fn from_json(body: &[u8]) -> Result<Event, EventError> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| EventError::BadJson(e.to_string()))?;
        let obj = v.as_object().ok_or(EventError::UnknownFormat)?;
        let mut lower: Vec<String> = obj.keys().map(|k| k.to_ascii_lowercase()).collect();
        lower.sort_unstable();
        if let Some(w) = lower.windows(2).find(|w| w[0] == w[1]) {
            return Err(EventError::BadJson(format!("{} appears twice", w[0])));
        }
        // Field names compare without case: the UEM's are PascalCase, and
        // some relays camelCase them.
        let field = |name: &str| -> Result<Option<String>, EventError> {
            let Some((key, value)) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
                return Ok(None);
            };
            match value {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::String(s) => Ok(Some(s.clone())),
                serde_json::Value::Number(n) => Ok(Some(n.to_string())),
                serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
                _ => Err(EventError::NotText(key.clone())),
            }
        };
        Self::from_fields(field)
    }

    fn from_xml(body: &[u8]) -> Result<Event, EventError> {
        use quick_xml::events::Event as X;
        let bad = |why: &str| EventError::BadXml(why.to_string());
        let text = std::str::from_utf8(body).map_err(|_| bad("not utf-8"))?;
        let mut reader = quick_xml::Reader::from_str(text);
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut depth = 0usize;
        // The field being read (a child of the root), and whether the root
        // has been opened and closed.
        let mut current: Option<String> = None;
        let (mut opened, mut closed) = (false, false);
        let append = |fields: &mut Vec<(String, String)>, name: &str, value: &str| {
            if let Some((_, v)) = fields.iter_mut().rev().find(|(k, _)| k == name) {
                v.push_str(value);
            }
        };
        loop {
            match reader.read_event() {
                Err(e) => return Err(EventError::BadXml(e.to_string())),
                Ok(X::DocType(_)) => return Err(bad("a DOCTYPE is refused")),
                Ok(X::Start(s)) => {
                    if closed {
                        return Err(bad("a second root element"));
                    }
                    depth += 1;
                    let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    match depth {
                        1 if name != "Eventlog" => {
                            return Err(EventError::BadXml(format!(
                                "the root is {name}, not Eventlog"
                            )))
                        }
                        1 => opened = true,
                        2 => {
                            if fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
                                return Err(EventError::BadXml(format!("{name} appears twice")));
                            }
                            fields.push((name.clone(), String::new()));
                            current = Some(name);
                        }
                        d if d > 8 => return Err(bad("nested too deeply")),
                        _ => {}
                    }
                }
                Ok(X::Empty(s)) => {
                    let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    match depth {
                        0 => {
                            return Err(EventError::BadXml(format!("the root is an empty {name}")))
                        }
                        1 => {
                            if fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
                                return Err(EventError::BadXml(format!("{name} appears twice")));
                            }
                            fields.push((name, String::new()));
                        }
                        _ => {}
                    }
                }
                Ok(X::Text(t)) => {
                    if let (2, Some(name)) = (depth, &current) {
                        let value = t.decode().map_err(|e| EventError::BadXml(e.to_string()))?;
                        append(&mut fields, name, &value);
                    }
                }
                Ok(X::CData(t)) => {
                    if let (2, Some(name)) = (depth, &current) {
                        let value = t.decode().map_err(|e| EventError::BadXml(e.to_string()))?;
                        append(&mut fields, name, &value);
                    }
                }
                Ok(X::GeneralRef(r)) => {
                    let name = r.decode().map_err(|e| EventError::BadXml(e.to_string()))?;
                    let resolved: String = match &*name {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        n => {
                            // A character reference: &#116; or &#x74;.
                            let code = n
                                .strip_prefix("#x")
                                .or_else(|| n.strip_prefix("#X"))
                                .map(|h| u32::from_str_radix(h, 16))
                                .or_else(|| n.strip_prefix('#').map(|d| d.parse::<u32>()))
                                .and_then(Result::ok)
                                .and_then(char::from_u32)
                                .ok_or_else(|| bad("an unknown entity"))?;
                            code.to_string()
                        }
                    };
                    if let (2, Some(field)) = (depth, &current) {
                        append(&mut fields, field, &resolved);
                    }
                }
                Ok(X::End(_)) => {
                    depth = depth.saturating_sub(1);
                    if depth < 2 {
                        current = None;
                    }
                    if depth == 0 {
                        closed = true;
                    }
                }
                Ok(X::Eof) => break,
                Ok(_) => {}
            }
        }
        if !opened {
            return Err(bad("no Eventlog element"));
        }
        if !closed {
            return Err(bad(
                "the Eventlog element is not closed (a truncated body?)",
            ));
        }
        Self::from_fields(|name| {
            Ok(fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone()))
        })
    }

    fn from_fields(
        field: impl Fn(&str) -> Result<Option<String>, EventError>,
    ) -> Result<Event, EventError> {
        let text = |name: &str| -> Result<Option<String>, EventError> {
            Ok(field(name)?
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()))
        };
        let event_time_text = text("EventTime")?;
        let event_time = match &event_time_text {
            Some(t) => Some(parse_time(t).ok_or_else(|| EventError::BadTime(t.clone()))?),
            None => None,
        };
        Ok(Event {
            event_id: text("EventId")?.ok_or(EventError::Missing("EventId"))?,
            event_type: text("EventType")?.ok_or(EventError::Missing("EventType"))?,
            device_id: text("DeviceId")?,
            udid: text("Udid")?,
            serial_number: text("SerialNumber")?,
            enrollment_status: text("EnrollmentStatus")?,
            compliance_status: text("ComplianceStatus")?,
            compromised_status: text("CompromisedStatus")?,
            user: text("EnrollmentUserName")?,
            email: match text("EnrollmentEmailAddress")? {
                Some(e) => Some(e),
                None => text("EmailAddress")?,
            },
            event_time,
            event_time_text,
        })
    }

    /// What makes one delivery this event and no other: Workspace ONE's
    /// EventId numbers the event *type* (178 is every "Compromised Status
    /// Changed"), so it cannot tell two deliveries apart alone. A repeat of
    /// the same notification has the same key; another device, user, time
    /// or status has another.
    pub fn delivery_key(&self) -> String {
        let parts: [&str; 11] = [
            &self.event_id,
            &self.event_type,
            self.device_id.as_deref().unwrap_or(""),
            self.udid.as_deref().unwrap_or(""),
            self.serial_number.as_deref().unwrap_or(""),
            self.event_time_text.as_deref().unwrap_or(""),
            self.enrollment_status.as_deref().unwrap_or(""),
            self.compliance_status.as_deref().unwrap_or(""),
            self.compromised_status.as_deref().unwrap_or(""),
            self.user.as_deref().unwrap_or(""),
            self.email.as_deref().unwrap_or(""),
        ];
        parts.join("\u{1f}")
    }

    /// What the event means for device trust, from its type and status
    /// fields. Any sign that the device is no longer trusted wins.
    pub fn effect(&self) -> Effect {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let kind = norm(&self.event_type);
        let status = |s: &Option<String>| s.as_deref().map(norm).unwrap_or_default();
        let (enrollment, compliance, compromised) = (
            status(&self.enrollment_status),
            status(&self.compliance_status),
            status(&self.compromised_status),
        );
        let untrusting_type = [
            "unenroll",
            "enterprisewipe",
            "devicewipe",
            "wipe",
            "delete",
            "breakmdm",
            "compromised",
        ]
        .iter()
        .any(|k| kind.contains(k))
            && !kind.contains("notcompromised");
        let untrusting_status = matches!(
            enrollment.as_str(),
            "unenrolled"
                | "enterprisewipepending"
                | "devicewipepending"
                | "deleted"
                | "unenrolledbyuser"
        ) || matches!(compliance.as_str(), "noncompliant" | "notcompliant")
            || matches!(compromised.as_str(), "compromised" | "true" | "yes" | "1");
        // A status change reports its new status: "Compliance Status
        // Changed" to Compliant is good news, whatever the type says.
        let status_change = kind.contains("statuschanged");
        // A compromise report whose status is missing (Workspace ONE sends
        // it empty) is taken at its word: fail closed.
        let unclear_compromise = kind.contains("compromised")
            && !kind.contains("notcompromised")
            && !matches!(
                compromised.as_str(),
                "notcompromised" | "false" | "no" | "0"
            );
        if untrusting_status || (untrusting_type && !status_change) || unclear_compromise {
            return Effect::Untrusted;
        }
        let trusting_status = matches!(enrollment.as_str(), "enrolled")
            || matches!(compliance.as_str(), "compliant")
            || matches!(
                compromised.as_str(),
                "notcompromised" | "false" | "no" | "0"
            );
        if trusting_status || kind.contains("enrollmentcomplete") || kind.contains("enrolled") {
            return Effect::Trusted;
        }
        Effect::Ignored
    }

    /// The subject the event's user signs in as, through `template`
    /// (`{user}` for EnrollmentUserName, `{email}` for the email address):
    /// `None` when the template names a field the event lacks.
    pub fn subject(&self, template: &SubjectTemplate) -> Option<String> {
        template.render(self.user.as_deref(), self.email.as_deref())
    }
}

/// How an event's user maps to the NameID sessions carry:
/// `"{user}@corp.example"`, `"{email}"`, `"{user}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate(String);

impl SubjectTemplate {
    /// A template with at least one of `{user}` and `{email}` and no other
    /// placeholder.
    pub fn parse(template: &str) -> Result<SubjectTemplate, String> {
        let rest = template.replace("{user}", "").replace("{email}", "");
        if rest.contains(['{', '}']) {
            return Err("only {user} and {email} may appear in braces".into());
        }
        if !template.contains("{user}") && !template.contains("{email}") {
            return Err("name {user} or {email}".into());
        }
        Ok(SubjectTemplate(template.to_string()))
    }

    fn render(&self, user: Option<&str>, email: Option<&str>) -> Option<String> {
        // A UEM user name is often DOMAIN\user: the part after the
        // backslash is the account.
        let value = |v: Option<&str>| -> Option<String> {
            let v = v?.rsplit('\\').next()?.trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        // One pass: a value that holds `{email}` is not expanded again.
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("{user}") {
                let user = value(user)?;
                // `bob@corp.example` into `{user}@corp.example` names no one.
                if user.contains('@') && self.0 != "{user}" {
                    return None;
                }
                out.push_str(&user);
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("{email}") {
                out.push_str(&value(email)?);
                rest = tail;
            } else {
                return None;
            }
        }
        out.push_str(rest);
        Some(out)
    }
}

/// ISO 8601 / RFC 3339 (with or without an offset, which then means UTC),
/// or .NET's `/Date(1559054422087)/` (optionally with `+0000`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits_end = inner
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
            .map_or(inner.len(), |(i, _)| i);
        let ms: i64 = inner[..digits_end].parse().ok()?;
        let offset = &inner[digits_end..];
        if !(offset.is_empty()
            || (offset.len() == 5
                && matches!(offset.as_bytes()[0], b'+' | b'-')
                && offset[1..].bytes().all(|b| b.is_ascii_digit())))
        {
            return None;
        }
        let ms = u64::try_from(ms).ok()?;
        return UNIX_EPOCH.checked_add(Duration::from_millis(ms));
    }
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.into());
    }
    // No offset: the UEM's local-less form, read as UTC.
    let with_z = format!("{s}Z");
    time::OffsetDateTime::parse(&with_z, &Rfc3339)
        .ok()
        .map(Into::into)
}

#[cfg(test)]
mod tests;
