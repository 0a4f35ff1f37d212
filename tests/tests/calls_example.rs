//! The bar of the calls example (`examples/src/bin/calls.rs`): a host
//! calling the device from 8 tasks with 200 ms deadlines, across a link
//! cut and a device reboot, in at most 30 host lines and 10 device lines
//! besides the handlers (the test command runs the example itself).

fn lines_between(source: &str, anchor: &str) -> Vec<String> {
    let start = format!("// ANCHOR: {anchor}");
    let end = format!("// ANCHOR_END: {anchor}");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in source.lines() {
        if line.trim() == start {
            inside = true;
        } else if line.trim() == end {
            inside = false;
        } else if inside {
            let code = line.trim();
            // Blank lines, comments and the handlers (`.serve::<E, _>(...)`) do not count.
            if !code.is_empty() && !code.starts_with("//") && !code.contains(".serve::<") {
                lines.push(code.to_string());
            }
        }
    }
    lines
}

// r[verify rpc.call]
#[test]
fn the_calls_example_needs_at_most_30_host_and_10_device_lines() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/src/bin/calls.rs")).unwrap();
    let host = lines_between(&source, "host");
    let device = lines_between(&source, "device");
    println!("host: {} lines, device: {} lines", host.len(), device.len());
    assert!(!host.is_empty() && !device.is_empty(), "the anchors are in place");
    assert!(host.len() <= 30, "host: {} lines\n{}", host.len(), host.join("\n"));
    assert!(device.len() <= 10, "device: {} lines\n{}", device.len(), device.join("\n"));
}
