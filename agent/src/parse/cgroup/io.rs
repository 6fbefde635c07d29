//! Per-device block I/O of a cgroup: v2 `io.stat` (nested-keyed) and v1
//! `blkio.throttle.io_service_bytes_recursive` / `blkio.throttle.io_serviced_recursive`.

use super::super::{ParseError, excerpt, parse_u32, parse_u64};
use std::collections::BTreeMap;

/// A block device's numbers, `(major, minor)`.
pub type DeviceId = (u32, u32);

/// Cumulative I/O of a cgroup on one device. Discards are absent where the kernel does not count
/// them (io.stat before 4.19's `dbytes`/`dios`, v1 tables without a `Discard` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    pub discard_bytes: Option<u64>,
    pub discards: Option<u64>,
}

/// `MAJ:MIN` as the kernel prints it.
fn parse_device(token: &str) -> Result<DeviceId, String> {
    let Some((major, minor)) = token.split_once(':') else {
        let got = excerpt(token);
        return Err(format!("expected a MAJ:MIN device, got {got:?}"));
    };
    Ok((parse_u32(major, "major")?, parse_u32(minor, "minor")?))
}

const IO_STAT: &str = "io.stat";

/// Parses v2 `io.stat`: one line per device, `MAJ:MIN` then `key=value` pairs. `rbytes`, `wbytes`,
/// `rios`, `wios`, `dbytes`, `dios` are read; every other key (iocost's `cost.vrate=100.00`,
/// io.latency's `depth=1 avg_lat=...`, debug `use_delay=...`) is skipped without looking at its
/// value. The kernel leaves the standard keys out of a line when they are all zero, so a line with
/// none of them is all zeros; a line with some but not all of the four read/write keys is an
/// error, as are a token without `=`, a repeated key and a repeated device.
pub fn parse_io_stat(text: &str) -> Result<BTreeMap<DeviceId, DeviceCounters>, ParseError> {
    let mut out = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let err = |message: String| ParseError::new(IO_STAT, line_no, message);
        let mut tokens = line.split_whitespace();
        let Some(device) = tokens.next() else {
            continue;
        };
        let device = parse_device(device).map_err(err)?;
        let counters = parse_io_stat_keys(tokens).map_err(err)?;
        if out.insert(device, counters).is_some() {
            let (major, minor) = device;
            return Err(err(format!("duplicate device {major}:{minor}")));
        }
    }
    Ok(out)
}

fn parse_io_stat_keys<'a>(tokens: impl Iterator<Item = &'a str>) -> Result<DeviceCounters, String> {
    const KEYS: [&str; 6] = ["rbytes", "wbytes", "rios", "wios", "dbytes", "dios"];
    let mut values: [Option<u64>; 6] = [None; 6];
    for token in tokens {
        let Some((key, value)) = token.split_once('=') else {
            let got = excerpt(token);
            return Err(format!("expected key=value, got {got:?}"));
        };
        let Some(slot) = KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| values.get_mut(i))
        else {
            continue;
        };
        if slot.is_some() {
            return Err(format!("duplicate key {key}"));
        }
        *slot = Some(parse_u64(value, key)?);
    }
    let [rbytes, wbytes, rios, wios, dbytes, dios] = values;
    let read_write = [rbytes, wbytes, rios, wios];
    let counters = if read_write.iter().all(Option::is_none) {
        DeviceCounters {
            discard_bytes: dbytes,
            discards: dios,
            ..DeviceCounters::default()
        }
    } else {
        let need = |v: Option<u64>, key: &str| v.ok_or_else(|| format!("missing {key}"));
        DeviceCounters {
            read_bytes: need(rbytes, "rbytes")?,
            write_bytes: need(wbytes, "wbytes")?,
            reads: need(rios, "rios")?,
            writes: need(wios, "wios")?,
            discard_bytes: dbytes,
            discards: dios,
        }
    };
    Ok(counters)
}

/// One device's rows of a v1 blkio table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlkioRows {
    pub read: Option<u64>,
    pub write: Option<u64>,
    pub sync: Option<u64>,
    pub async_: Option<u64>,
    pub discard: Option<u64>,
    pub total: Option<u64>,
}

/// A v1 blkio table such as `blkio.throttle.io_service_bytes_recursive`:
/// `MAJ:MIN Read|Write|Sync|Async|Discard|Total value` lines, then a `Total value` line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlkioTable {
    pub devices: BTreeMap<DeviceId, BlkioRows>,
    /// The last line: the sum of the devices' `Total` rows.
    pub total: Option<u64>,
}

/// Parses a v1 blkio table; `what` names the file in errors. Rows of an unknown operation are
/// skipped; a malformed line, a repeated row or a repeated `Total` line is an error.
pub fn parse_blkio(text: &str, what: &'static str) -> Result<BlkioTable, ParseError> {
    let mut table = BlkioTable::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index.saturating_add(1);
        let err = |message: String| ParseError::new(what, line_no, message);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            [] => {}
            ["Total", value] => {
                if table.total.is_some() {
                    return Err(err("duplicate \"Total\" line".to_owned()));
                }
                table.total = Some(parse_u64(value, "Total").map_err(err)?);
            }
            [device, op, value] => {
                let device = parse_device(device).map_err(err)?;
                let rows = table.devices.entry(device).or_default();
                let slot = match *op {
                    "Read" => &mut rows.read,
                    "Write" => &mut rows.write,
                    "Sync" => &mut rows.sync,
                    "Async" => &mut rows.async_,
                    "Discard" => &mut rows.discard,
                    "Total" => &mut rows.total,
                    _ => continue,
                };
                if slot.is_some() {
                    let (major, minor) = device;
                    return Err(err(format!("duplicate {op} row for {major}:{minor}")));
                }
                *slot = Some(parse_u64(value, op).map_err(err)?);
            }
            _ => {
                let got = excerpt(line);
                return Err(err(format!(
                    "expected \"MAJ:MIN Operation value\" or \"Total value\", got {got:?}"
                )));
            }
        }
    }
    Ok(table)
}

/// Joins v1's bytes table (`io_service_bytes`) and operations table (`io_serviced`) into
/// per-device counters. A device in only one table, or without a Read or Write row, counts 0 there;
/// discards are absent when the bytes table has no `Discard` row for the device.
pub fn blkio_counters(bytes: &BlkioTable, ios: &BlkioTable) -> BTreeMap<DeviceId, DeviceCounters> {
    let mut out = BTreeMap::new();
    for device in bytes.devices.keys().chain(ios.devices.keys()) {
        if out.contains_key(device) {
            continue;
        }
        let b = bytes.devices.get(device).copied().unwrap_or_default();
        let o = ios.devices.get(device).copied().unwrap_or_default();
        out.insert(
            *device,
            DeviceCounters {
                read_bytes: b.read.unwrap_or(0),
                write_bytes: b.write.unwrap_or(0),
                reads: o.read.unwrap_or(0),
                writes: o.write.unwrap_or(0),
                discard_bytes: b.discard,
                discards: b.discard.and(o.discard),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn io_stat_reads_every_device_and_skips_extra_keys() {
        let text = "\
8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0
8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021 cost.vrate=100.00 cost.usage=7 depth=max
253:0 
259:1 rbytes=1 wbytes=2 rios=3 wios=4
";
        let stat = parse_io_stat(text).expect("valid");
        assert_eq!(stat.len(), 4);
        assert_eq!(
            stat[&(8, 0)],
            DeviceCounters {
                read_bytes: 90_430_464,
                write_bytes: 299_008_000,
                reads: 8950,
                writes: 1252,
                discard_bytes: Some(50_331_648),
                discards: Some(3021),
            }
        );
        assert_eq!(stat[&(8, 16)].write_bytes, 314_773_504);
        assert_eq!(stat[&(253, 0)], DeviceCounters::default());
        assert_eq!(
            stat[&(259, 1)],
            DeviceCounters {
                read_bytes: 1,
                write_bytes: 2,
                reads: 3,
                writes: 4,
                discard_bytes: None,
                discards: None,
            }
        );
        assert!(parse_io_stat("").expect("empty is valid").is_empty());
    }

    #[test]
    fn io_stat_errors_name_the_line_and_problem() {
        let cases = [
            (
                "sda rbytes=1\n",
                1,
                "expected a MAJ:MIN device, got \"sda\"",
            ),
            (
                "8:x rbytes=1\n",
                1,
                "expected a number for minor, got \"x\"",
            ),
            ("8:0 rbytes=1 wbytes=2 rios=3\n", 1, "missing wios"),
            (
                "8:0 rbytes=1 wbytes=2 rios=3 wios=4 rbytes=5\n",
                1,
                "duplicate key rbytes",
            ),
            (
                "8:0 rbytes=1 wbytes=2 rios=3 wios=four\n",
                1,
                "expected a number for wios, got \"four\"",
            ),
            ("8:0 rbytes=1 junk\n", 1, "expected key=value, got \"junk\""),
            (
                "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:0 rbytes=1 wbytes=2 rios=3 wios=4\n",
                2,
                "duplicate device 8:0",
            ),
        ];
        for (text, line, message) in cases {
            let e = parse_io_stat(text).unwrap_err();
            assert_eq!(
                (e.what, e.line, e.message.as_str()),
                ("io.stat", line, message),
                "{text:?}"
            );
        }
    }

    const BYTES: &str = "\
254:0 Read 6553600
254:0 Write 6553600
254:0 Sync 13107200
254:0 Async 0
254:0 Discard 4096
254:0 Total 13107200
8:0 Read 10
8:0 Write 20
8:0 Sync 30
8:0 Async 0
8:0 Total 30
Total 13107230
";
    const IOS: &str = "\
254:0 Read 100
254:0 Write 100
254:0 Sync 200
254:0 Async 0
254:0 Discard 1
254:0 Total 200
Total 200
";

    #[test]
    fn blkio_tables_and_their_join() {
        let bytes = parse_blkio(BYTES, "blkio").expect("valid");
        assert_eq!(bytes.total, Some(13_107_230));
        assert_eq!(
            bytes.devices[&(254, 0)],
            BlkioRows {
                read: Some(6_553_600),
                write: Some(6_553_600),
                sync: Some(13_107_200),
                async_: Some(0),
                discard: Some(4096),
                total: Some(13_107_200),
            }
        );
        assert_eq!(bytes.devices[&(8, 0)].discard, None);
        let ios = parse_blkio(IOS, "blkio").expect("valid");
        let joined = blkio_counters(&bytes, &ios);
        assert_eq!(
            joined[&(254, 0)],
            DeviceCounters {
                read_bytes: 6_553_600,
                write_bytes: 6_553_600,
                reads: 100,
                writes: 100,
                discard_bytes: Some(4096),
                discards: Some(1),
            }
        );
        assert_eq!(
            joined[&(8, 0)],
            DeviceCounters {
                read_bytes: 10,
                write_bytes: 20,
                reads: 0,
                writes: 0,
                discard_bytes: None,
                discards: None,
            }
        );
        let empty = parse_blkio("Total 0\n", "blkio").expect("valid");
        assert!(empty.devices.is_empty());
        assert_eq!(empty.total, Some(0));
        // Unknown operations are skipped.
        let t = parse_blkio("8:0 Future 5\n8:0 Read 1\n", "blkio").expect("valid");
        assert_eq!(t.devices[&(8, 0)].read, Some(1));
    }

    #[test]
    fn blkio_errors_name_the_line_and_problem() {
        let cases = [
            (
                "8:0 Read\n",
                1,
                "expected \"MAJ:MIN Operation value\" or \"Total value\", got \"8:0 Read\"",
            ),
            ("Total x\n", 1, "expected a number for Total, got \"x\""),
            ("Total 1\nTotal 2\n", 2, "duplicate \"Total\" line"),
            ("8:0 Read 1\n8:0 Read 2\n", 2, "duplicate Read row for 8:0"),
            ("8-0 Read 1\n", 1, "expected a MAJ:MIN device, got \"8-0\""),
            (
                "8:0 Write -1\n",
                1,
                "expected a number for Write, got \"-1\"",
            ),
        ];
        for (text, line, message) in cases {
            let e = parse_blkio(text, "blkio.throttle.io_serviced_recursive").unwrap_err();
            assert_eq!(
                (e.what, e.line, e.message.as_str()),
                ("blkio.throttle.io_serviced_recursive", line, message),
                "{text:?}"
            );
        }
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            Just("max".to_owned()),
            Just("100.00".to_owned()),
            Just(String::new()),
            Just("-1".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_io_stat(&text);
            let a = parse_blkio(&text, "x");
            if let Ok(a) = a {
                let _ = blkio_counters(&a, &a);
            }
        }

        #[test]
        fn near_valid_io_stat_lines(
            major in any::<u32>(),
            minor in any::<u32>(),
            keys in prop::collection::vec(
                (prop_oneof![
                    Just("rbytes"), Just("wbytes"), Just("rios"), Just("wios"),
                    Just("dbytes"), Just("dios"), Just("cost.vrate"), Just("depth"),
                ], value()),
                0..10,
            ),
        ) {
            let pairs: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let text = format!("{major}:{minor} {}\n", pairs.join(" "));
            if let Ok(stat) = parse_io_stat(&text) {
                prop_assert_eq!(stat.len(), 1);
                let c = stat[&(major, minor)];
                if let Some((_, v)) = keys.iter().find(|(k, _)| *k == "rbytes") {
                    prop_assert_eq!(c.read_bytes.to_string(), v.clone());
                }
            }
        }

        #[test]
        fn generated_blkio_tables_round_trip(
            rows in prop::collection::btree_map(
                (0u32..300, 0u32..20),
                (any::<u64>(), any::<u64>()),
                0..6,
            ),
        ) {
            let mut text = String::new();
            for ((major, minor), (read, write)) in &rows {
                text.push_str(&format!("{major}:{minor} Read {read}\n{major}:{minor} Write {write}\n"));
            }
            text.push_str("Total 0\n");
            let table = parse_blkio(&text, "x").expect("valid");
            let joined = blkio_counters(&table, &table);
            prop_assert_eq!(joined.len(), rows.len());
            for (device, (read, write)) in &rows {
                prop_assert_eq!(joined[device].read_bytes, *read);
                prop_assert_eq!(joined[device].writes, *write);
            }
        }
    }
}
