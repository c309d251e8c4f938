package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// parseHumanDuration reads the durations of the welcome's gossipsub parameters, written the
// way Rust's humantime formats them: number-unit pairs, optionally separated by spaces,
// e.g. "1s", "100ms", "1m", "1s 500ms", "2h 5m", "1day". Units as humantime accepts them.
func parseHumanDuration(text string) (time.Duration, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q: expected a number at %q", text, s)
		}
		n, err := strconv.ParseUint(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: %v", text, err)
		}
		s = s[i:]
		j := 0
		for j < len(s) && (unicode.IsLetter(rune(s[j])) || s[j] == 0xC2 || s[j] == 0xB5) {
			j++
		}
		unit := s[:j]
		s = s[j:]
		mult, ok := humanUnits[unit]
		if !ok {
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q", text, unit)
		}
		total += time.Duration(n) * mult
	}
	return total, nil
}

var humanUnits = func() map[string]time.Duration {
	m := map[string]time.Duration{}
	add := func(d time.Duration, names ...string) {
		for _, n := range names {
			m[n] = d
		}
	}
	add(time.Nanosecond, "nsec", "ns")
	add(time.Microsecond, "usec", "us", "µs")
	add(time.Millisecond, "msec", "ms")
	add(time.Second, "seconds", "second", "secs", "sec", "s")
	add(time.Minute, "minutes", "minute", "min", "mins", "m")
	add(time.Hour, "hours", "hour", "hr", "hrs", "h")
	add(24*time.Hour, "days", "day", "d")
	add(7*24*time.Hour, "weeks", "week", "w")
	// humantime: a month is 30.44 days, a year 365.25 days.
	add(2_630_016*time.Second, "months", "month", "M")
	add(31_557_600*time.Second, "years", "year", "y")
	return m
}()
