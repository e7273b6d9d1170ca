//! The pages trustgate shows users after a decision: refused, enrollment
//! expired, sign-in not verified or paused, session required, and the
//! lock-state list. Their statuses and headers are rows of the answer table
//! ([`Answer::row`]); this writes their words. Plain words, small enough
//! for a phone's webview, no internals.

use http::{header, HeaderValue, Response, StatusCode};

use super::{escape_html, full, Answer, Body};

/// A page with a title, paragraphs (already escaped HTML) and a request id.
pub(super) fn render(
    status: StatusCode,
    title: &str,
    paragraphs: &[String],
    request_id: &str,
) -> Response<Body> {
    let mut body = String::new();
    for p in paragraphs {
        body.push_str("<p>");
        body.push_str(p);
        body.push_str("</p>");
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}}a.button{{display:inline-block;\
padding:.6rem 1rem;background:#1a5fb4;color:#fff;border-radius:.4rem;text-decoration:none}}\
small{{color:#666}}li{{margin:.3rem 0}}</style></head><body><h1>{title}</h1>{body}\
<p><small>request {rid}</small></p></body></html>\n",
        title = escape_html(title),
        rid = escape_html(request_id),
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The paragraphs (escaped HTML) of a page that carries data: its app,
/// links and lists. Errors and redirects carry none.
pub(super) fn paragraphs(answer: &Answer<'_>) -> Vec<String> {
    match *answer {
        Answer::Denied { app, enrollment } => {
            let mut p = vec![format!(
                "Your organization does not allow <b>{}</b> on this device. The app stays \
                 locked on this device for the rest of your session.",
                escape_html(app)
            )];
            if let Some(link) = enrollment {
                p.push(format!(
                    "To get access, enroll this device with your organization. \
                     <a class=\"button\" href=\"{}\">Enroll this device</a>",
                    escape_html(link)
                ));
            } else {
                p.push("Contact your IT help desk if you think this is wrong.".into());
            }
            p
        }
        Answer::EnrollmentExpired { app, restart } => {
            let app = escape_html(app);
            vec![
                format!(
                    "Your sign-in to <b>{app}</b> expired while this device was being \
                     enrolled. Open <b>{app}</b> again."
                ),
                format!(
                    "<a class=\"button\" href=\"{}\">Sign in to {app} again</a>",
                    escape_html(restart)
                ),
            ]
        }
        Answer::AssertionRejected {
            app,
            reason,
            restart,
        } => vec![
            format!(
                "Your sign-in to <b>{}</b> could not be verified ({}).",
                escape_html(app),
                escape_html(&reason.replace('_', " "))
            ),
            format!(
                "<a class=\"button\" href=\"{}\">Try signing in again</a>",
                escape_html(restart)
            ),
        ],
        Answer::ReplayCacheFull { app, restart } => vec![
            format!(
                "The gateway cannot accept a new sign-in to <b>{}</b> right now: it \
                 already remembers as many recent sign-ins as it may. Try again in a \
                 few minutes.",
                escape_html(app)
            ),
            format!(
                "<a class=\"button\" href=\"{}\">Sign in again</a>",
                escape_html(restart)
            ),
        ],
        Answer::SessionRequired => vec![escape_html(answer.row().text)],
        Answer::Apps { list } => {
            let mut items = String::from("<ul>");
            for (app, locked) in list {
                items.push_str(&format!(
                    "<li>{} {}</li>",
                    if *locked { "&#128274;" } else { "&#10003;" },
                    escape_html(app)
                ));
                if *locked {
                    items.push_str(" <small>(locked on this device)</small>");
                }
            }
            items.push_str("</ul>");
            vec![items]
        }
        Answer::Error(_) | Answer::SignIn { .. } | Answer::Enroll { .. } => Vec::new(),
    }
}
