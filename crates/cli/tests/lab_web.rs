//! The read-only web view of a real daemon, in a real headless browser (Debian's
//! chromium): the daemon on two guests in two groups and two uplinks, the API on
//! TCP+TLS (a test CA) with an auditor's token, forged and honest frames through
//! the switch. The page, opened as `/ui/#token=…`, must show the ports with their
//! group and VLAN, the bindings, the uplink picture as the API has it, the
//! forged-transmit drops in the chart and the caller's role, with no CSP violation
//! in the console; a wrong token must get the 401 shown (and audited by the API)
//! and no data; with `web_view` turned off by an apply (without a new switch) and
//! over the Unix socket, `/ui/` is the API's 404. The screenshots are decoded and
//! checked (size, not blank, the drops series' colour above the chart's baseline)
//! and kept in `target/lab-web/` for a person to look at.
//!
//! Chromium is started with no network beyond 127.0.0.1: no QUIC, no background
//! networking, no component updates, no sync, no proxy, no name resolution, a
//! fresh profile per run.

mod common;

use common::tls::{free_port, make_ca, make_server_cert, token};
use common::*;
use portcullis_api::Method;
use portcullis_api::client::{ClientError, Endpoint, call_blocking, call_endpoint_blocking};
use portcullis_lab::Guest;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1600;

/// Starts frames from `g` (a lab-tracked scapy process, for at most two minutes):
/// forged ones (a source MAC not its own) and honest ones, about 400 a second
/// each, so that the page sees drop and packet rates while it polls. Its pid.
fn traffic(lab: &mut portcullis_lab::Lab, g: &Guest, ip: &str, dst: &str) -> u32 {
    let mac = g.mac().unwrap();
    let script = format!(
        "import time\nfrom scapy.all import *\nconf.verb = 0\n\
         s = conf.L2socket(iface='eth0')\n\
         forged = Ether(src='02:00:00:00:00:99', dst='{dst}')/ARP(op=2, hwsrc='02:00:00:00:00:99', psrc='{ip}')\n\
         honest = Ether(src='{mac}', dst='{dst}')/ARP(op=2, hwsrc='{mac}', psrc='{ip}')\n\
         end = time.time() + 120\n\
         while time.time() < end:\n    s.send(forged); s.send(honest); time.sleep(0.002)\n"
    );
    let mut cmd = g.command("/usr/bin/python3");
    cmd.args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(cmd).unwrap()
}

/// Runs chromium headless on `url` with `mode` (`--dump-dom` or `--screenshot=…`),
/// a fresh profile under `dir`, and no network beyond the daemon; its stdout.
fn chromium(dir: &Path, run: &str, mode: &str, url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "lab_web needs Debian's chromium at {CHROMIUM} (apt-get install chromium; scripts/test.sh installs it)"
    );
    let profile = dir.join(format!("chromium-{run}"));
    std::fs::create_dir_all(&profile).unwrap();
    let (out_path, err_path) = (
        dir.join(format!("chromium-{run}.out")),
        dir.join(format!("chromium-{run}.err")),
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            "--virtual-time-budget=8000",
            // Belt and braces: no proxy, and no name resolves (the URL is an
            // address), so nothing can leave the machine.
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            // The page's console messages (a CSP violation among them) to stderr.
            "--enable-logging=stderr",
            "--log-level=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(mode)
        .arg(url)
        .env("HOME", &profile)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium ({run}) did not finish in 120 s:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium ({run}) failed: {status}\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        !(mode == "--dump-dom" && out.is_empty()),
        "chromium ({run}) dumped nothing:\n{err}"
    );
    // The page keeps to its own Content-Security-Policy.
    assert!(
        !err.contains("Content Security Policy"),
        "chromium ({run}) reports a CSP violation:\n{err}"
    );
    out
}

/// The text from `start` (included) to the next `end` after it.
fn between<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let i = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} is not on the page:\n{dom}"));
    let rest = &dom[i..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// A decoded screenshot: RGB pixels, row by row.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode_png(path: &Path) -> Image {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Indexed => panic!("indexed colour after EXPAND"),
    };
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Image {
        width: info.width,
        height: info.height,
        rgb,
    }
}

fn hex_color(s: &str) -> [u8; 3] {
    let s = s.trim_start_matches('#');
    let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).unwrap();
    [byte(0), byte(2), byte(4)]
}

/// Pixels within (x, y, w, h) whose colour is within 12 per channel of `c`.
fn pixels_near(img: &Image, (x, y, w, h): (u32, u32, u32, u32), c: [u8; 3]) -> usize {
    let mut n = 0;
    for row in y..(y + h).min(img.height) {
        for col in x..(x + w).min(img.width) {
            let p = img.rgb[(row * img.width + col) as usize];
            if p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 12) {
                n += 1;
            }
        }
    }
    n
}

/// Where the screenshots are kept: `target/lab-web/`.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("lab-web");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_web_view_in_a_headless_browser() {
    let began = Instant::now();
    // Never skipped: without the browser the test fails here.
    assert!(
        Path::new(CHROMIUM).exists(),
        "lab_web needs Debian's chromium at {CHROMIUM} (apt-get install chromium; scripts/test.sh installs it)"
    );
    let mut lab = lab("web", &["scapy"]);
    let web = lab.add_guest("web1").unwrap();
    let db = lab.add_guest("db1").unwrap();
    for g in [&web, &db] {
        g.disable_ipv6().unwrap();
    }
    web.set_addr("198.18.20.1/16").unwrap();
    db.set_addr("198.18.30.2/16").unwrap();
    let (up1, _) = lab.add_host_veth().unwrap();
    let (up2, _) = lab.add_host_veth().unwrap();
    let dir = lab.scratch_dir().unwrap();
    let (ca, issuer) = make_ca(&dir, "web");
    let (cert, key) = make_server_cert(&dir, &issuer);
    let (good, hash) = token("web-view", "auditor");
    let api_port = free_port();
    let (web_mac, db_mac) = (web.mac().unwrap(), db.mac().unwrap());
    let host = |web_view: bool| {
        format!(
            r#"
[host.uplinks]
uplink1 = "{up1}"
uplink2 = "{up2}"
{}{}
[[host.static_binding]]
mac = "{web_mac}"
ip = "198.18.20.1"
port = "web1"

[host.management]
tcp_listen = "127.0.0.1:{api_port}"
tls_cert = "{}"
tls_key = "{}"
web_view = {web_view}

[[host.management.token]]
name = "web-view"
role = "auditor"
hash = "{hash}"
"#,
            port("web1", &web, "web"),
            port("db1", &db, "db"),
            cert.display(),
            key.display(),
        )
    };
    let profile = r#"
[switch]
name = "webview"

[uplink_policy]
uplinks = ["uplink1", "uplink2"]
allowed_vlans = [20, 30]

[[port_group]]
name = "web"
vlan = 20

[[port_group]]
name = "db"
vlan = 30
"#;
    let sw = start_daemon(&mut lab, "sw", &format!("{profile}{}", host(true)));

    // A binding added through the API (an event), then frames: forged and honest.
    call_blocking(
        &sw.socket,
        Method::POST,
        "/v1/bindings",
        Some(serde_json::json!({"mac": db_mac, "ip": "198.18.30.2", "vlan": 30, "port": "db1"})),
    )
    .unwrap();
    let sender = traffic(&mut lab, &web, "198.18.20.1", &db_mac);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sw.drops("web1", "forged_transmit") == 0 {
        assert!(Instant::now() < deadline, "no forged_transmit drop counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let uplinks = sw.get("/v1/uplinks");

    // The page with the auditor's token.
    let base = format!("https://127.0.0.1:{api_port}/ui/");
    let url = format!("{base}#token={good}");
    let dom = chromium(&dir, "dom", "--dump-dom", &url);
    let failure = |what: &str| {
        format!(
            "{what}\n--- DOM ---\n{dom}\n--- daemon log ---\n{}",
            sw.log_text()
        )
    };
    assert!(
        dom.contains("<main id=\"content\">"),
        "{}",
        failure("the content is not shown")
    );
    assert!(
        !dom.contains(&good),
        "{}",
        failure("the token is on the page")
    );
    assert!(
        dom.contains("<dd id=\"role\">auditor</dd>"),
        "{}",
        failure("whoami role")
    );
    assert!(
        dom.contains("<dd id=\"whoami\">token:web-view</dd>"),
        "{}",
        failure("whoami user")
    );
    assert!(
        dom.contains("<span id=\"switch-name\">webview</span>"),
        "{}",
        failure("switch name")
    );
    for (name, group, vlan, mac) in [
        ("web1", "web", "access 20", &web_mac),
        ("db1", "db", "access 30", &db_mac),
    ] {
        let row = between(&dom, &format!("<tr data-port=\"{name}\">"), "</tr>");
        for cell in [name, "guest", group, vlan, mac.as_str()] {
            assert!(
                row.contains(&format!(">{cell}<")),
                "{}",
                failure(&format!("{name}: {cell} in {row}"))
            );
        }
        assert!(
            row.contains("state-up\">up<"),
            "{}",
            failure(&format!("{name} is up: {row}"))
        );
    }
    for u in ["uplink1", "uplink2"] {
        let row = between(&dom, &format!("<tr data-port=\"{u}\">"), "</tr>");
        assert!(
            row.contains(">uplink<") && row.contains(">trunk 20,30<"),
            "{}",
            failure(row)
        );
    }
    // The uplink picture: each uplink with the guests the API pins to it.
    for u in uplinks.as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let block = between(&dom, &format!("data-uplink=\"{name}\""), "</ul>");
        assert!(
            block.contains(">up ·") || block.contains("· up ·"),
            "{}",
            failure(block)
        );
        for g in u["guests"].as_array().unwrap() {
            let chip = format!("<li class=\"chip\">{}</li>", g.as_str().unwrap());
            assert!(
                block.contains(&chip),
                "{}",
                failure(&format!("{chip} under {name}"))
            );
        }
    }
    let pinned: usize = uplinks
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["guests"].as_array().unwrap().len())
        .sum();
    assert_eq!(pinned, 2, "both guests leave by an uplink: {uplinks}");
    // The bindings: the static one and the API's.
    let bindings = between(&dom, "<table id=\"bindings\">", "</table>");
    for needle in [
        ">198.18.20.1<",
        &format!(">{web_mac}<"),
        ">static<",
        ">198.18.30.2<",
        ">api<",
        ">never expires<",
    ] {
        assert!(
            bindings.contains(needle),
            "{}",
            failure(&format!("bindings: {needle}"))
        );
    }
    // The events: the API's binding, newest first.
    let events = between(&dom, "<table id=\"events\">", "</table>");
    assert!(
        events.contains(">binding_added<"),
        "{}",
        failure("the binding_added event")
    );
    // The drops: forged_transmit in the legend with a count, and its colour.
    let legend = between(&dom, "<li data-reason=\"forged_transmit\"", "</li>");
    let total: u64 = legend
        .split("forged_transmit: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        total > 0,
        "{}",
        failure(&format!("forged_transmit total: {legend}"))
    );
    let color = legend
        .split("data-color=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the series colour")
        .to_string();
    let rect: Vec<u32> = between(&dom, "<div id=\"drops-chart\" data-rect=\"", "\">")
        .trim_start_matches("<div id=\"drops-chart\" data-rect=\"")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(rect.len(), 4, "{}", failure("the chart's place"));
    assert!(
        rect[1] + rect[3] <= HEIGHT,
        "the chart is within the screenshot: {rect:?}"
    );

    // The screenshot: a real image, not blank, the drops series drawn in its colour.
    let shots = screenshot_dir();
    let png_path = shots.join("web-view.png");
    let _ = std::fs::remove_file(&png_path);
    chromium(
        &dir,
        "shot",
        &format!("--screenshot={}", png_path.display()),
        &url,
    );
    let img = decode_png(&png_path);
    assert_eq!(
        (img.width, img.height),
        (WIDTH, HEIGHT),
        "{}",
        png_path.display()
    );
    let distinct: std::collections::HashSet<[u8; 3]> = img.rgb.iter().copied().collect();
    assert!(
        distinct.len() > 200,
        "the page looks blank: {} colours",
        distinct.len()
    );
    let in_chart = pixels_near(
        &img,
        (rect[0], rect[1], rect[2], rect[3]),
        hex_color(&color),
    );
    assert!(
        in_chart >= 30,
        "the forged_transmit series ({color}) is not drawn in the chart at {rect:?}: {in_chart} pixels ({})",
        png_path.display()
    );
    // The series rose above its baseline: drops per second were computed.
    let rows = (rect[1]..rect[1] + rect[3])
        .filter(|&y| pixels_near(&img, (rect[0], y, rect[2], 1), hex_color(&color)) > 0)
        .count();
    assert!(
        rows > 10,
        "the drops series is flat ({rows} rows): {}",
        png_path.display()
    );
    let elsewhere = pixels_near(
        &img,
        (0, 0, WIDTH, rect[1].saturating_sub(1)),
        hex_color(&color),
    );
    assert_eq!(elsewhere, 0, "the drops colour is used above the chart");
    lab.kill(sender);

    // A wrong token: the refusal is shown, and nothing of the switch.
    let bad = format!("{base}#token=pcl_web-view_{}", "0".repeat(64));
    let dom = chromium(&dir, "bad", "--dump-dom", &bad);
    assert!(
        dom.contains("refused: 401 unauthenticated — a valid bearer token is required"),
        "{dom}"
    );
    for absent in [
        "data-port=",
        "web1",
        "db1",
        "198.18.20.1",
        "webview",
        "<main id=\"content\">",
    ] {
        assert!(
            !dom.contains(absent),
            "{absent} shown to a refused caller:\n{dom}"
        );
    }
    // The API audited the refusal, as for any client: the page used the API.
    let records = portcullis_control::audit::read_records(&dir.join("sw-state").join("audit.log"))
        .unwrap()
        .0;
    assert!(
        records.iter().any(|r| r.action == "read /v1/whoami"
            && r.source.starts_with("tcp:127.0.0.1:")
            && r.result.starts_with("refused:")),
        "the wrong token's refusal is audited: {records:#?}"
    );
    let refused_png = shots.join("web-view-refused.png");
    chromium(
        &dir,
        "bad-shot",
        &format!("--screenshot={}", refused_png.display()),
        &bad,
    );
    assert_eq!(decode_png(&refused_png).width, WIDTH);

    // Over the Unix socket the page does not exist.
    match call_blocking(&sw.socket, Method::GET, "/ui/", None) {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status.as_u16(), code.as_str()), (404, "not_found"));
        }
        other => panic!("/ui/ over the socket: {other:?}"),
    }

    // web_view off by an apply: management only, no new switch; then /ui/ is 404.
    let answer = call_blocking(
        &sw.socket,
        Method::POST,
        "/v1/config/apply",
        Some(serde_json::json!({
            "profile": {"name": "web-off.toml", "text": format!("{profile}{}", host(false))},
        })),
    )
    .unwrap();
    assert_eq!(answer["applied"], true, "{answer}");
    let keys: Vec<&str> = answer["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["management.web_view"], "{answer}");
    assert!(
        answer["carry_over"].is_null(),
        "the switch was rebuilt: {answer}"
    );
    let tls = Endpoint::Tls {
        addr: format!("127.0.0.1:{api_port}"),
        ca: ca.clone(),
        token: Some(good.clone()),
    };
    match call_endpoint_blocking(&tls, Method::GET, "/ui/", None) {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status.as_u16(), code.as_str()), (404, "not_found"));
        }
        other => panic!("/ui/ with web_view off: {other:?}"),
    }
    let who = call_endpoint_blocking(&tls, Method::GET, "/v1/whoami", None).unwrap();
    assert_eq!(who["role"], "auditor", "the API itself still answers");
    eprintln!(
        "lab_web: {:.1} s; screenshots in {}",
        began.elapsed().as_secs_f64(),
        shots.display()
    );
}
