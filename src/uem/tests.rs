use super::*;

const JSON: &str = r#"{
  "EventId": 1183,
  "EventType": "Compliance Status Changed",
  "DeviceId": 8721,
  "DeviceFriendlyName": "Bob's iPhone",
  "EnrollmentEmailAddress": "bob@corp.example",
  "EnrollmentUserName": "bob",
  "EventTime": "/Date(1764806700123)/",
  "EnrollmentStatus": "Enrolled",
  "CompromisedStatus": "",
  "ComplianceStatus": "NonCompliant",
  "Udid": "00008030-001A2D8E0E38802E",
  "SerialNumber": "F17XK2ABC",
  "PhoneNumber": null
}"#;

const XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Eventlog xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
  <EventId>2044</EventId>
  <EventType>Device Wipe</EventType>
  <DeviceId>8721</DeviceId>
  <EnrollmentUserName>CORP\bob</EnrollmentUserName>
  <EventTime>2026-12-03T09:05:00.250Z</EventTime>
  <Udid>00008030-001A2D8E0E38802E</Udid>
  <SerialNumber>F17&amp;XK2</SerialNumber>
  <ComplianceStatus />
</Eventlog>"#;

#[test]
fn json_events_read_every_field() {
    let e = Event::parse(JSON.as_bytes()).unwrap();
    assert_eq!(e.event_id, "1183");
    assert_eq!(e.event_type, "Compliance Status Changed");
    assert_eq!(e.device_id.as_deref(), Some("8721"));
    assert_eq!(e.user.as_deref(), Some("bob"));
    assert_eq!(e.email.as_deref(), Some("bob@corp.example"));
    assert_eq!(e.compromised_status, None, "empty is absent");
    assert_eq!(e.serial_number.as_deref(), Some("F17XK2ABC"));
    assert_eq!(
        e.event_time,
        Some(UNIX_EPOCH + Duration::from_millis(1_764_806_700_123))
    );
    assert_eq!(e.effect(), Effect::Untrusted);
}

#[test]
fn xml_eventlog_events_read_every_field() {
    let e = Event::parse(XML.as_bytes()).unwrap();
    assert_eq!(e.event_id, "2044");
    assert_eq!(e.event_type, "Device Wipe");
    assert_eq!(e.user.as_deref(), Some("CORP\\bob"));
    assert_eq!(e.serial_number.as_deref(), Some("F17&XK2"));
    assert_eq!(e.compliance_status, None);
    let t = time::OffsetDateTime::from(e.event_time.unwrap());
    assert_eq!(t.unix_timestamp(), 1_796_288_700);
    assert_eq!(e.effect(), Effect::Untrusted);
}

#[test]
fn both_date_forms_and_their_variants() {
    let at = |s| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_millis());
    assert_eq!(at("/Date(1559054422087)/"), Some(1_559_054_422_087));
    assert_eq!(at("/Date(1559054422087+0000)/"), Some(1_559_054_422_087));
    assert_eq!(at("/Date(1559054422087-0700)/"), Some(1_559_054_422_087));
    assert_eq!(at("2019-05-28T14:40:22.087Z"), Some(1_559_054_422_087));
    assert_eq!(at("2019-05-28T16:40:22.087+02:00"), Some(1_559_054_422_087));
    assert_eq!(at("2019-05-28T14:40:22.087"), Some(1_559_054_422_087));
    for bad in [
        "/Date(abc)/",
        "/Date(1)x/",
        "/Date(-5)/",
        "yesterday",
        "",
        "2019-13-01T00:00:00Z",
    ] {
        assert_eq!(at(bad), None, "{bad:?}");
    }
}

#[test]
fn effects_follow_type_and_status() {
    let ev = |kind: &str, enrollment: &str, compliance: &str, compromised: &str| Event {
        event_id: "1".into(),
        event_type: kind.into(),
        enrollment_status: Some(enrollment.into()).filter(|s: &String| !s.is_empty()),
        compliance_status: Some(compliance.into()).filter(|s: &String| !s.is_empty()),
        compromised_status: Some(compromised.into()).filter(|s: &String| !s.is_empty()),
        ..Event::default()
    };
    use Effect::*;
    for (e, want) in [
        (ev("Device Unenrolled", "", "", ""), Untrusted),
        (ev("Enterprise Wipe", "", "", ""), Untrusted),
        (ev("Device Wipe", "", "", ""), Untrusted),
        (ev("Device Delete", "", "", ""), Untrusted),
        (ev("Break MDM Confirmed", "", "", ""), Untrusted),
        (
            ev("Compliance Status Changed", "", "NonCompliant", ""),
            Untrusted,
        ),
        (
            ev("Compliance Status Changed", "", "Non-Compliant", ""),
            Untrusted,
        ),
        (
            ev("Compliance Status Changed", "", "Compliant", ""),
            Trusted,
        ),
        (
            ev("Compromised Status Changed", "", "", "Compromised"),
            Untrusted,
        ),
        (ev("Compromised Status Changed", "", "", "true"), Untrusted),
        (
            ev("Compromised Status Changed", "", "", "NotCompromised"),
            Trusted,
        ),
        (
            ev("Enrollment Status Changed", "Unenrolled", "", ""),
            Untrusted,
        ),
        (ev("MDM Enrollment Complete", "Enrolled", "", ""), Trusted),
        (ev("MDM Enrollment Complete", "", "", ""), Trusted),
        // Good news in one field, bad in another: bad wins.
        (
            ev("Compliance Status Changed", "Enrolled", "NonCompliant", ""),
            Untrusted,
        ),
        (ev("Device Renamed", "", "", ""), Ignored),
        (ev("Some Future Event", "", "", ""), Ignored),
    ] {
        assert_eq!(e.effect(), want, "{e:?}");
    }
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    use EventError::*;
    for (body, want) in [
        (&b""[..], UnknownFormat),
        (b"plain text", UnknownFormat),
        (b"[1, 2]", UnknownFormat),
        (b"{\"EventType\": \"Device Wipe\"}", Missing("EventId")),
        (b"{\"EventId\": \"7\"}", Missing("EventType")),
        (
            b"{\"EventId\": \"\", \"EventType\": \"x\"}",
            Missing("EventId"),
        ),
        (
            b"{\"EventId\": {\"a\": 1}, \"EventType\": \"x\"}",
            NotText("EventId".into()),
        ),
        (
            b"{\"EventId\": 1, \"EventType\": \"x\", \"EventTime\": \"soon\"}",
            BadTime("soon".into()),
        ),
        (
            b"<Other><EventId>1</EventId></Other>",
            BadXml("the root is Other, not Eventlog".into()),
        ),
    ] {
        assert_eq!(
            Event::parse(body).unwrap_err(),
            want,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(matches!(Event::parse(b"{\"EventId\": 1,"), Err(BadJson(_))));
    assert!(matches!(
        Event::parse(
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><Eventlog><EventId>&a;</EventId></Eventlog>"
        ),
        Err(BadXml(_))
    ));
    assert!(matches!(
        Event::parse(b"<Eventlog><EventId>1</Event"),
        Err(BadXml(_))
    ));
    assert_eq!(
        Event::parse(&vec![b' '; MAX_EVENT_BYTES + 1]).unwrap_err(),
        TooLarge
    );
}

#[test]
fn subjects_map_through_the_template() {
    let e = Event::parse(XML.as_bytes()).unwrap();
    let t = SubjectTemplate::parse("{user}@corp.example").unwrap();
    assert_eq!(
        e.subject(&t).as_deref(),
        Some("bob@corp.example"),
        "domain dropped"
    );
    let email = SubjectTemplate::parse("{email}").unwrap();
    assert_eq!(e.subject(&email), None, "no email in this event");
    let j = Event::parse(JSON.as_bytes()).unwrap();
    assert_eq!(j.subject(&email).as_deref(), Some("bob@corp.example"));
    for bad in ["{name}@x", "nothing", "{user}{"] {
        assert!(SubjectTemplate::parse(bad).is_err(), "{bad}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Whatever arrives, parsing answers (an event or an error), never a
    /// panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let _ = Event::parse(&body).map(|e| e.effect());
    }

    #[test]
    fn json_shaped_bodies_never_panic(
        id in "[0-9a-zA-Z ]{0,8}",
        kind in "[a-zA-Z ]{0,24}",
        status in "[a-zA-Z\\- ]{0,16}",
        when in "(/Date\\([0-9+\\-]{0,16}\\)/)|([0-9T:.\\-Z+]{0,30})",
    ) {
        let body = serde_json::json!({
            "EventId": id, "EventType": kind, "ComplianceStatus": status,
            "CompromisedStatus": status, "EventTime": when,
        });
        let _ = Event::parse(body.to_string().as_bytes()).map(|e| e.effect());
    }

    #[test]
    fn xml_shaped_bodies_never_panic(inner in "[<>/a-zA-Z0-9&;# ]{0,200}") {
        let body = format!("<Eventlog><EventId>1</EventId><EventType>{inner}</EventType></Eventlog>");
        let _ = Event::parse(body.as_bytes()).map(|e| e.effect());
    }
}

#[test]
fn deliveries_differ_by_more_than_the_event_id() {
    // Workspace ONE's EventId numbers the type: two users, one id.
    let a = Event::parse(br#"{"EventId":178,"EventType":"Compliance Status Changed","EnrollmentUserName":"ann","ComplianceStatus":"Compliant","DeviceId":1}"#).unwrap();
    let b = Event::parse(br#"{"EventId":178,"EventType":"Compliance Status Changed","EnrollmentUserName":"bob","ComplianceStatus":"NonCompliant","DeviceId":2}"#).unwrap();
    assert_ne!(a.delivery_key(), b.delivery_key());
    let again = Event::parse(br#"{"EventId":178,"EventType":"Compliance Status Changed","EnrollmentUserName":"ann","ComplianceStatus":"Compliant","DeviceId":1}"#).unwrap();
    assert_eq!(a.delivery_key(), again.delivery_key());
}

#[test]
fn real_shaped_events_fail_closed_and_xml_is_strict() {
    // An empty CompromisedStatus on a compromise report: untrusted.
    let e = Event::parse(b"<Eventlog><EventId>178</EventId><EventType>Compromised Status Changed</EventType><CompromisedStatus /></Eventlog>").unwrap();
    assert_eq!(e.effect(), Effect::Untrusted);
    // CDATA and character references are text.
    let e = Event::parse(b"<Eventlog><EventId>1</EventId><EventType>Compliance Status Changed</EventType><EnrollmentUserName><![CDATA[bob]]></EnrollmentUserName><ComplianceStatus>Non&#67;ompliant</ComplianceStatus></Eventlog>").unwrap();
    assert_eq!(e.user.as_deref(), Some("bob"));
    assert_eq!(e.effect(), Effect::Untrusted);
    for bad in [
        &b"<Eventlog><EventId>1</EventId><EventType>x</EventType>"[..],
        b"<Eventlog><EventId>1</EventId><EventType>x</EventType></Eventlog><Eventlog/>",
        b"<Eventlog><EventId>1</EventId><EnrollmentUserName>vic</EnrollmentUserName><EnrollmentUserName>tim</EnrollmentUserName><EventType>x</EventType></Eventlog>",
    ] {
        assert!(matches!(Event::parse(bad), Err(EventError::BadXml(_))), "{}", String::from_utf8_lossy(bad));
    }
    assert!(matches!(
        Event::parse(br#"{"EventId":1,"eventid":2,"EventType":"x"}"#),
        Err(EventError::BadJson(_))
    ));
}

#[test]
fn the_template_renders_once_and_names_no_one_twice() {
    let t = SubjectTemplate::parse("{user}@corp.example").unwrap();
    let ev = |user: &str, email: &str| Event {
        user: Some(user.into()),
        email: Some(email.into()),
        ..Event::default()
    };
    assert_eq!(
        ev("{email}", "ceo").subject(&t).as_deref(),
        Some("{email}@corp.example")
    );
    assert_eq!(ev("bob@corp.example", "").subject(&t), None);
    let plain = SubjectTemplate::parse("{user}").unwrap();
    assert_eq!(
        ev("bob@corp.example", "").subject(&plain).as_deref(),
        Some("bob@corp.example")
    );
}
