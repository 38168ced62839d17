//! The HTML review in a real headless Chromium (Debian's `chromium`; scripts/test.sh installs
//! it, and this test fails with how to install it when it is missing — it never skips).
//!
//! For every playbook, one Chromium process opens the review from a `file://` URL and takes a
//! screenshot (1280 px wide), prints a PDF, and dumps the DOM after a probe script has measured
//! the page twice: at 1280 px, and at a phone's 390 px in an off-screen frame holding the same
//! document. The test then checks that:
//! - Chromium logged no console message: the page's Content-Security-Policy forbids every
//!   request, so anything it tried to load would be reported there;
//! - neither width scrolls sideways;
//! - the plan name, every host, every step, every wave's failure sentence and the warnings are
//!   *visible* text (`innerText`, which leaves out what CSS hides) at both widths;
//! - the step graph is drawn, and a plan with stages draws every stage as a box of the stage
//!   graph (its SVG text has a size on screen);
//! - the PDF holds the same text (`pdftotext`, from poppler-utils).
//!
//! The probe needs a script, which the review's policy forbids: the test's copy of the page
//! allows one script by nonce, and nothing else changes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/playbooks.rs"]
mod playbooks;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use playbooks::{PLAYBOOKS, review_args, sluice};

/// The review's policy, as the HTML writes it, and the test copy's.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
const PROBE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'nonce-probe'";

/// Measures the page at its own width and at 390 px, and leaves the result (hex of JSON) in
/// the `data-probe` attribute of `<html>`, where `--dump-dom` shows it and nothing renders it.
const PROBE: &str = r#"
(function () {
  function measure(doc) {
    var root = doc.documentElement;
    var svg = doc.querySelector('figure.graph:not(.stage-graph) svg');
    var stages = doc.querySelectorAll('figure.stage-graph svg text.id');
    return {
      overflow: root.scrollWidth - root.clientWidth,
      text: doc.body.innerText,
      graph_width: svg ? svg.getBoundingClientRect().width : 0,
      stage_boxes: Array.prototype.filter.call(stages, function (t) {
        var box = t.getBoundingClientRect();
        return box.width > 0 && box.height > 0;
      }).map(function (t) { return t.textContent; })
    };
  }
  var result = { wide: measure(document) };
  var frame = document.createElement('iframe');
  frame.style.cssText = 'position:absolute;left:-5000px;top:0;width:390px;height:900px;border:0';
  frame.srcdoc = ORIGINAL;
  frame.onload = function () {
    result.phone = measure(frame.contentDocument);
    var bytes = new TextEncoder().encode(JSON.stringify(result));
    var hex = Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
    document.documentElement.setAttribute('data-probe', hex);
    frame.remove();
  };
  document.body.appendChild(frame);
})();
"#;

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed: the HTML review is tested in a real browser. Install \
             Debian's package (`apt-get install chromium`), as scripts/test.sh does."
        )
    })
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", &pdf.to_string_lossy(), "-"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "pdftotext cannot run ({e}): install poppler-utils (`apt-get install \
                 poppler-utils`), as scripts/test.sh does"
            )
        });
    assert!(out.status.success(), "pdftotext {}: {out:?}", pdf.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One playbook's files and what the review says it must show.
struct Case {
    name: &'static str,
    dir: PathBuf,
    expected: Expected,
}

/// What the page of a playbook must show.
struct Expected {
    /// Visible text, at both widths and in the PDF.
    texts: Vec<String>,
    /// The stages, each a box of the stage graph's drawing (none for a plan without stages).
    stage_names: Vec<String>,
}

impl Case {
    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }
}

/// What a reader must see: from the JSON review of the same playbook.
fn expected(plan: &str, inventory: &str) -> Expected {
    let out = sluice()
        .args(review_args(plan, inventory, "json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strings = |pointer: &str, field: &str| -> Vec<String> {
        review
            .pointer(pointer)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v[field].as_str().map(str::to_string))
            .collect()
    };
    let mut texts = vec![review["summary"]["name"].as_str().unwrap().to_string()];
    texts.extend(strings("/hosts", "name"));
    texts.extend(strings("/steps", "id"));
    texts.extend(strings("/waves", "on_failure"));
    // The page sets a message's `code` spans as code: the backticks are not text.
    texts.extend(
        strings("/warnings", "message")
            .into_iter()
            .map(|m| m.replace('`', "")),
    );
    Expected {
        texts,
        stage_names: strings("/stages", "name"),
    }
}

/// Chromium on the test copy of one review: screenshot, PDF, and the DOM after the probe.
fn start_chromium(browser: &Path, case: &Case) -> Child {
    let profile = case.dir.join(format!("{}.profile", case.name));
    let _ = std::fs::remove_dir_all(&profile);
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--no-pdf-header-footer",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", case.file("png").display()))
        .arg(format!("--print-to-pdf={}", case.file("pdf").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", case.file("probe.html").display()))
        // Files, not pipes: a full pipe nobody reads would stall Chromium.
        .stdout(Stdio::from(
            std::fs::File::create(case.file("dom")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(case.file("log")).unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// Waits for Chromium, killing it after a minute (a hung browser fails the test, it does not
/// hang it), and reads what it wrote: the DOM and its log.
fn finish(mut child: Child, case: &Case) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{}: chromium did not finish within a minute", case.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |ext| String::from_utf8_lossy(&std::fs::read(case.file(ext)).unwrap()).into_owned();
    (read("dom"), read("log"))
}

/// The review with its policy relaxed for one nonce'd script, and the probe.
fn probe_copy(html: &str) -> String {
    assert!(html.contains(CSP), "the review's policy is in place");
    // The original goes into a JS string: JSON is a JS literal, and `</` must not end the
    // script element early.
    let original = serde_json::to_string(html).unwrap().replace("</", "<\\/");
    let script = format!(
        "<script nonce=\"probe\">{}</script>\n</body>",
        PROBE.replace("ORIGINAL", &original)
    );
    html.replace(CSP, PROBE_CSP).replace("</body>", &script)
}

fn probe_result(dom: &str, name: &str) -> serde_json::Value {
    let start = dom
        .find("data-probe=\"")
        .unwrap_or_else(|| panic!("{name}: the probe left no result in the DOM"))
        + "data-probe=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    let bytes: Vec<u8> = (start..end)
        .step_by(2)
        .map(|i| u8::from_str_radix(&dom[i..i + 2], 16).unwrap())
        .collect();
    serde_json::from_slice(&bytes).unwrap()
}

/// Text as a reader sees it, whitespace runs made one space (layouts wrap lines differently).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn html_review_of_every_playbook_renders_in_chromium() {
    let browser = chromium();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-review-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = Vec::new();
    for (plan, inventory) in PLAYBOOKS {
        let case = Case {
            name: plan,
            dir: dir.clone(),
            expected: expected(plan, inventory),
        };
        let mut args = review_args(plan, inventory, "html");
        args.extend([
            "--review-out".into(),
            case.file("html").display().to_string(),
        ]);
        let out = sluice().args(&args).output().unwrap();
        assert!(out.status.success(), "{plan}: {out:?}");
        let html = std::fs::read_to_string(case.file("html")).unwrap();
        assert!(
            !html.contains("<script"),
            "{plan}: the review runs no script"
        );
        for remote in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!html.contains(remote), "{plan}: {remote}");
        }
        std::fs::write(case.file("probe.html"), probe_copy(&html)).unwrap();
        cases.push(case);
    }
    // All browsers at once: most of each run is Chromium starting up.
    let started = Instant::now();
    let running: Vec<Child> = cases.iter().map(|c| start_chromium(&browser, c)).collect();
    let outputs: Vec<(String, String)> = running
        .into_iter()
        .zip(&cases)
        .map(|(child, case)| finish(child, case))
        .collect();
    eprintln!(
        "chromium: {} reviews in {:.1}s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    for (case, (dom, log)) in cases.iter().zip(&outputs) {
        check_case(case, dom, log);
    }
}

fn check_case(case: &Case, dom: &str, log: &str) {
    let name = case.name;
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "{name}: console messages: {console:#?}");
    let probe = probe_result(dom, name);
    for width in ["wide", "phone"] {
        let m = &probe[width];
        assert!(
            m["overflow"].as_f64().unwrap() <= 0.0,
            "{name} at {width}: the page scrolls sideways by {} px",
            m["overflow"]
        );
        assert!(
            m["graph_width"].as_f64().unwrap() > 50.0,
            "{name} at {width}: the step graph is not drawn"
        );
        let boxes: Vec<&str> = m["stage_boxes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b.as_str())
            .collect();
        assert_eq!(
            boxes.len(),
            case.expected.stage_names.len(),
            "{name} at {width}: stage graph boxes {boxes:?}"
        );
        for (i, stage) in case.expected.stage_names.iter().enumerate() {
            let title = format!("{}. {stage}", i + 1);
            assert!(
                boxes.contains(&title.as_str()),
                "{name} at {width}: stage {stage} not drawn in {boxes:?}"
            );
        }
        let visible = flat(m["text"].as_str().unwrap());
        for text in &case.expected.texts {
            assert!(
                visible.contains(&flat(text)),
                "{name} at {width}: not visible: {text}"
            );
        }
    }
    let png = std::fs::read(case.file("png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: no screenshot");
    assert!(png.len() > 10_000, "{name}: the screenshot is blank");
    let pdf = case.file("pdf");
    assert!(
        std::fs::read(&pdf).unwrap().starts_with(b"%PDF"),
        "{name}: no PDF"
    );
    let printed = flat(&pdftotext(&pdf));
    for text in &case.expected.texts {
        // A sentence may break across pages; its words in order are enough.
        let words = flat(text);
        assert!(printed.contains(&words), "{name}: not in the PDF: {text}");
    }
}
