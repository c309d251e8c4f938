package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// rssBytes returns the current (VmRSS) and peak (VmHWM) resident set size from
// /proc/self/status, in bytes (0 where unavailable).
func rssBytes() (current, peak uint64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			current = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			peak = parseKB(line)
		}
	}
	return current, peak
}

func parseKB(line string) uint64 {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[1], 10, 64)
	return v * 1024
}

// cpuNs returns user + system CPU time of the process so far.
func cpuNs() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return uint64(ru.Utime.Nano() + ru.Stime.Nano())
}
