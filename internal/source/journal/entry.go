package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Entry is the part of a journal entry palisade uses.
type Entry struct {
	Message    string
	Cursor     string
	Time       time.Time // _SOURCE_REALTIME_TIMESTAMP, else __REALTIME_TIMESTAMP
	Hostname   string
	Identifier string // SYSLOG_IDENTIFIER, else _COMM
	PID        string // SYSLOG_PID, else _PID
	Monotonic  time.Duration
}

type rawEntry struct {
	Message        json.RawMessage `json:"MESSAGE"`
	Cursor         json.RawMessage `json:"__CURSOR"`
	Realtime       json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	SourceRealtime json.RawMessage `json:"_SOURCE_REALTIME_TIMESTAMP"`
	Hostname       json.RawMessage `json:"_HOSTNAME"`
	Ident          json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Comm           json.RawMessage `json:"_COMM"`
	SyslogPID      json.RawMessage `json:"SYSLOG_PID"`
	PID            json.RawMessage `json:"_PID"`
	SourceMono     json.RawMessage `json:"_SOURCE_MONOTONIC_TIMESTAMP"`
	Mono           json.RawMessage `json:"__MONOTONIC_TIMESTAMP"`
}

// DecodeEntry decodes one line of `journalctl -o json`. A field is a
// string, an array of byte values (journalctl's encoding of non-UTF-8
// data), null (too big, without --all), or an array of those when the
// field occurs several times (MESSAGE values are then joined with " ",
// like fail2ban; other fields keep the first).
func DecodeEntry(b []byte) (Entry, error) {
	var r rawEntry
	if err := json.Unmarshal(b, &r); err != nil {
		return Entry{}, fmt.Errorf("journal entry: %w", err)
	}
	var e Entry
	var err error
	field := func(raw json.RawMessage, name string, join bool) string {
		vals, ferr := fieldValues(raw)
		if ferr != nil && err == nil {
			err = fmt.Errorf("journal entry field %s: %w", name, ferr)
		}
		if len(vals) == 0 {
			return ""
		}
		if join {
			return strings.Join(vals, " ")
		}
		return vals[0]
	}
	first := func(a, b json.RawMessage, an, bn string) string {
		if v := field(a, an, false); v != "" {
			return v
		}
		return field(b, bn, false)
	}
	e.Message = field(r.Message, "MESSAGE", true)
	e.Cursor = field(r.Cursor, "__CURSOR", false)
	e.Hostname = field(r.Hostname, "_HOSTNAME", false)
	e.Identifier = first(r.Ident, r.Comm, "SYSLOG_IDENTIFIER", "_COMM")
	e.PID = first(r.SyslogPID, r.PID, "SYSLOG_PID", "_PID")
	if us := first(r.SourceRealtime, r.Realtime, "_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"); us != "" {
		n, perr := strconv.ParseInt(us, 10, 64)
		if perr != nil {
			return Entry{}, fmt.Errorf("journal entry: realtime timestamp %q: %w", us, perr)
		}
		e.Time = time.UnixMicro(n)
	}
	if us := first(r.SourceMono, r.Mono, "_SOURCE_MONOTONIC_TIMESTAMP", "__MONOTONIC_TIMESTAMP"); us != "" {
		if n, perr := strconv.ParseInt(us, 10, 64); perr == nil {
			e.Monotonic = time.Duration(n) * time.Microsecond
		}
	}
	if err != nil {
		return Entry{}, err
	}
	return e, nil
}

// fieldValues decodes one JSON field value into its values.
func fieldValues(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return []string{""}, nil
		}
		if t := bytes.TrimSpace(items[0]); len(t) > 0 && t[0] != '"' && t[0] != '[' && string(t) != "null" {
			// an array of byte values
			buf := make([]byte, len(items))
			for i, it := range items {
				n, err := strconv.ParseUint(string(bytes.TrimSpace(it)), 10, 8)
				if err != nil {
					return nil, fmt.Errorf("byte array: %w", err)
				}
				buf[i] = byte(n)
			}
			return []string{string(buf)}, nil
		}
		var out []string
		for _, it := range items { // several values
			v, err := fieldValues(it)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected JSON %.20q", raw)
}

// Format renders the entry the way fail2ban's systemd backend does:
// "HOST IDENT[PID]: MESSAGE" (each part only when present; a kernel
// message gets "[MONOTONIC]" seconds after "kernel:"), newlines in the
// message written as `\n`.
func (e Entry) Format() string {
	var b strings.Builder
	b.Grow(len(e.Hostname) + len(e.Identifier) + len(e.Message) + 16)
	if e.Hostname != "" {
		b.WriteString(e.Hostname)
	}
	if e.Identifier != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Identifier)
		if e.PID != "" {
			b.WriteByte('[')
			if n, err := strconv.ParseInt(e.PID, 10, 64); err == nil && (e.PID == "0" || e.PID[0] != '0') {
				b.WriteString(strconv.FormatInt(n, 10))
			} else {
				b.WriteString(e.PID)
			}
			b.WriteByte(']')
		}
		b.WriteByte(':')
		if e.Identifier == "kernel" && e.PID == "" {
			fmt.Fprintf(&b, " [%12.6f]", e.Monotonic.Seconds())
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(e.Message)
	return strings.ReplaceAll(b.String(), "\n", `\n`)
}
