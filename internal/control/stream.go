package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
)

// Streamer is a reply too large to build in memory (every ban of a jail
// under attack): a handler returns one, and the server writes it as the
// response's data straight to the socket while it is produced. The bytes
// on the wire are the same as for the reply type built whole, so clients
// decode it as usual.
type Streamer interface {
	WriteJSON(w io.Writer) error
}

// BannedStream is a BannedReply whose bans are produced while it is
// written.
type BannedStream struct {
	Bans iter.Seq[BanEntry]
}

// WriteJSON implements Streamer.
func (s BannedStream) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(`{"bans":[`); err != nil {
		return err
	}
	first := true
	var werr error
	if s.Bans != nil {
		for b := range s.Bans {
			if !first {
				if werr = bw.WriteByte(','); werr != nil {
					break
				}
			}
			first = false
			raw, err := json.Marshal(b)
			if err != nil {
				return err
			}
			if _, werr = bw.Write(raw); werr != nil {
				break
			}
		}
	}
	if werr != nil {
		return werr
	}
	if _, err := bw.WriteString("]}"); err != nil {
		return err
	}
	return bw.Flush()
}

// StatusStream is a StatusReply whose jails' Banned lists come from
// Banned while it is written (Reply.Jails[i].Banned is ignored).
type StatusStream struct {
	Reply  StatusReply
	Banned func(jail string) iter.Seq[string]
}

// WriteJSON implements Streamer.
func (s StatusStream) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	head := s.Reply
	head.Jails = nil
	before, after, err := splitAt(head, "jails")
	if err != nil {
		return err
	}
	if _, err := bw.Write(before); err != nil {
		return err
	}
	if s.Reply.Jails == nil {
		if _, err := bw.WriteString("null"); err != nil {
			return err
		}
	} else {
		if err := bw.WriteByte('['); err != nil {
			return err
		}
		for i, j := range s.Reply.Jails {
			if i > 0 {
				if err := bw.WriteByte(','); err != nil {
					return err
				}
			}
			if err := s.writeJail(bw, j); err != nil {
				return err
			}
		}
		if err := bw.WriteByte(']'); err != nil {
			return err
		}
	}
	if _, err := bw.Write(after); err != nil {
		return err
	}
	return bw.Flush()
}

func (s StatusStream) writeJail(bw *bufio.Writer, j JailStatus) error {
	j.Banned = nil
	before, after, err := splitAt(j, "banned")
	if err != nil {
		return err
	}
	if _, err := bw.Write(before); err != nil {
		return err
	}
	if err := bw.WriteByte('['); err != nil {
		return err
	}
	n := 0
	if s.Banned != nil {
		for a := range s.Banned(j.Name) {
			if n > 0 {
				if err := bw.WriteByte(','); err != nil {
					return err
				}
			}
			n++
			if err := writeString(bw, a); err != nil {
				return err
			}
		}
	}
	if err := bw.WriteByte(']'); err != nil {
		return err
	}
	_, err = bw.Write(after)
	return err
}

// writeString writes s as a JSON string, exactly as encoding/json would.
func writeString(bw *bufio.Writer, s string) error {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if !plain {
		raw, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = bw.Write(raw)
		return err
	}
	if err := bw.WriteByte('"'); err != nil {
		return err
	}
	if _, err := bw.WriteString(s); err != nil {
		return err
	}
	return bw.WriteByte('"')
}

// splitAt marshals v (a struct) and splits the result around the value of
// its top-level field key, so that the caller can write that value itself.
// The field is found by reading the JSON tokens, never by searching the
// text, so no value can be mistaken for it.
func splitAt(v any, key string) (before, after []byte, err error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				depth++
				expectKey = depth == 1
			case '[':
				depth++
			case '}', ']':
				depth--
				expectKey = depth == 1
			}
			continue
		case string:
			if depth == 1 && expectKey {
				if t == key {
					start := dec.InputOffset()
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return nil, nil, err
					}
					end := dec.InputOffset()
					// InputOffset before the value points just after the key;
					// the value begins after the colon.
					colon := bytes.IndexByte(raw[start:end], ':')
					if colon < 0 {
						return nil, nil, errors.New("malformed object")
					}
					return raw[:int(start)+colon+1], raw[end:], nil
				}
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
	return nil, nil, fmt.Errorf("field %q not in the encoded reply", key)
}
