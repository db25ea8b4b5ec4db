package fleet

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func utmpRecord(typ int16, addr netip.Addr) []byte {
	r := make([]byte, utmpSize)
	binary.LittleEndian.PutUint16(r[utmpTypeOff:], uint16(typ))
	if addr.IsValid() {
		if addr.Is4() {
			b := addr.As4()
			copy(r[utmpAddrOff:], b[:])
		} else {
			b := addr.As16()
			copy(r[utmpAddrOff:], b[:])
		}
	}
	return r
}

func TestLoggedIn(t *testing.T) {
	var data []byte
	data = append(data, utmpRecord(2, netip.Addr{})...)                                  // BOOT_TIME
	data = append(data, utmpRecord(utmpUserProc, netip.MustParseAddr("203.0.113.9"))...) // ssh login
	data = append(data, utmpRecord(8, netip.MustParseAddr("198.51.100.1"))...)           // DEAD_PROCESS: logged out
	data = append(data, utmpRecord(utmpUserProc, netip.Addr{})...)                       // a console login
	data = append(data, utmpRecord(utmpUserProc, netip.MustParseAddr("2001:db8::5"))...)
	path := filepath.Join(t.TempDir(), "utmp")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoggedIn(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::5")}
	if !slices.Equal(got, want) {
		t.Fatalf("LoggedIn = %v, want %v", got, want)
	}
	if got, err := LoggedIn(filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Fatalf("missing file: %v %v", got, err)
	}
}
