//! Health readings straight from /proc and /sys (no crate: the files are simple and stable):
//! available memory, and the Pi firmware's undervoltage/throttling flags where they exist.

use crate::core::roles::Health;

/// Every process of the machine (the numeric entries of /proc).
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where the Pi firmware publishes `get_throttled` on Raspberry Pi OS and Debian kernels.
const THROTTLED: &[&str] = &[
    "/sys/devices/platform/soc/soc:firmware/get_throttled",
    "/sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/get_throttled",
];

/// Reads the node's health now. Missing files (not a Pi) read as healthy.
pub fn read_health(maintenance: bool) -> Health {
    let mem_available_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_mem_available_kib(&m))
        .map_or(0, |kib| kib / 1024);
    let throttled = THROTTLED
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| parse_throttled(&s))
        .unwrap_or(0);
    Health {
        // Bit 0: under-voltage now; bits 1-3: frequency capped, throttled, soft temperature limit.
        undervoltage: throttled & 0x1 != 0,
        throttled: throttled & 0xe != 0,
        mem_available_mib,
        maintenance,
    }
}

fn parse_mem_available_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn parse_throttled(s: &str) -> Option<u32> {
    let s = s.trim();
    let hex = s.strip_prefix("throttled=").unwrap_or(s);
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_and_firmware_flags() {
        assert_eq!(
            parse_mem_available_kib("MemTotal: 100 kB\nMemAvailable:   3276800 kB\n"),
            Some(3_276_800)
        );
        assert_eq!(parse_throttled("0x50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("throttled=0x0"), Some(0));
        assert_eq!(parse_throttled("junk"), None);
        assert!(
            read_health(false).mem_available_mib > 0,
            "this machine has /proc/meminfo"
        );
    }
}
