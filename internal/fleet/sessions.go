package fleet

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net/netip"
	"os"
)

// utmp record layout of glibc on 64-bit Linux (struct utmp, 384 bytes).
const (
	utmpSize       = 384
	utmpTypeOff    = 0
	utmpAddrOff    = 348
	utmpUserProc   = 7
	maxUtmpRecords = 4096
)

// LoggedIn returns the remote addresses of the sessions logged in now
// (utmp USER_PROCESS records with an address: SSH logins), so that a
// remote ban never cuts off an admin who is logged in. A missing file is
// no sessions.
func LoggedIn(path string) ([]netip.Addr, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for i := 0; i+utmpSize <= len(data) && i/utmpSize < maxUtmpRecords; i += utmpSize {
		r := data[i : i+utmpSize]
		if int16(binary.LittleEndian.Uint16(r[utmpTypeOff:])) != utmpUserProc {
			continue
		}
		var raw [16]byte
		copy(raw[:], r[utmpAddrOff:utmpAddrOff+16])
		var a netip.Addr
		if raw[4]|raw[5]|raw[6]|raw[7]|raw[8]|raw[9]|raw[10]|raw[11]|raw[12]|raw[13]|raw[14]|raw[15] == 0 {
			a = netip.AddrFrom4([4]byte(raw[:4]))
		} else {
			a = netip.AddrFrom16(raw).Unmap()
		}
		if a.IsValid() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out, nil
}
