package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// Socket is a listening TCP socket or a bound, unconnected UDP socket.
type Socket struct {
	Proto string // "tcp" or "udp"
	Addr  netip.Addr
	Port  uint16
	Inode uint64
	// Process and PID own the socket ("" and 0 when unknown).
	Process string
	PID     int
}

// Loopback reports whether only this host can reach the socket.
func (s Socket) Loopback() bool { return s.Addr.IsLoopback() }

// Endpoint renders "tcp 0.0.0.0:22".
func (s Socket) Endpoint() string {
	return s.Proto + " " + netip.AddrPortFrom(s.Addr, s.Port).String()
}

// String renders the socket with its owner for evidence.
func (s Socket) String() string {
	if s.Process == "" {
		return s.Endpoint()
	}
	return fmt.Sprintf("%s (%s, pid %d)", s.Endpoint(), s.Process, s.PID)
}

// SocketReader lists listening sockets. owners reports whether the owning
// processes could be looked up.
type SocketReader interface {
	Sockets() (socks []Socket, owners bool, err error)
}

// ProcNet reads /proc/net/{tcp,tcp6,udp,udp6} and the owners' /proc/PID/fd
// links. Under a root that holds proc/net/tcp (a test tree, a copy) it
// reads the root's proc; otherwise the live /proc of the audit's network
// namespace.
type ProcNet struct {
	Root string
	// MaxFDs bounds the file descriptors inspected (default 200,000).
	MaxFDs int
}

// Dir returns the proc directory read.
func (p ProcNet) Dir() string {
	if rp := fsx.Path(p.Root, "/proc"); rp != "/proc" {
		if _, err := os.Stat(filepath.Join(rp, "net", "tcp")); err == nil {
			return rp
		}
	}
	return "/proc"
}

// Sockets implements SocketReader.
func (p ProcNet) Sockets() ([]Socket, bool, error) {
	dir := p.Dir()
	var out []Socket
	read := 0
	for _, f := range []struct{ name, proto string }{{"tcp", "tcp"}, {"tcp6", "tcp"}, {"udp", "udp"}, {"udp6", "udp"}} {
		data, err := fsx.ReadFile(filepath.Join(dir, "net", f.name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // no IPv6, say
			}
			return nil, false, fmt.Errorf("read %s: %w", filepath.Join(dir, "net", f.name), err)
		}
		read++
		out = append(out, ParseProcNet(data, f.proto)...)
	}
	if read == 0 {
		return nil, false, fmt.Errorf("no socket table in %s/net", dir)
	}
	owners := p.owners(dir, out)
	slices.SortFunc(out, func(a, b Socket) int {
		if c := strings.Compare(a.Proto, b.Proto); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return a.Addr.Compare(b.Addr)
	})
	return out, owners, nil
}

// owners fills in the processes owning the sockets. It returns false when
// some process's descriptors could not be read (not root).
func (p ProcNet) owners(dir string, socks []Socket) bool {
	byInode := map[uint64][]int{}
	for i, s := range socks {
		if s.Inode != 0 {
			byInode[s.Inode] = append(byInode[s.Inode], i)
		}
	}
	if len(byInode) == 0 {
		return true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	maxFDs := p.MaxFDs
	if maxFDs <= 0 {
		maxFDs = 200000
	}
	complete, seen := true, 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(dir, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				complete = false
			}
			continue
		}
		var comm string
		for _, fd := range fds {
			if seen++; seen > maxFDs {
				return false
			}
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := socketInode(link)
			if !ok {
				continue
			}
			for _, i := range byInode[ino] {
				if comm == "" {
					b, _ := os.ReadFile(filepath.Join(dir, e.Name(), "comm"))
					comm = strings.TrimSpace(string(b))
				}
				if socks[i].PID == 0 || pid < socks[i].PID {
					socks[i].PID, socks[i].Process = pid, comm
				}
			}
		}
	}
	return complete
}

func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return n, err == nil
}

// TCP states in /proc/net/tcp; UDP sockets that are bound but not
// connected show TCP_CLOSE.
const (
	tcpListen = "0A"
	udpClose  = "07"
)

// ParseProcNet parses one /proc/net table and returns its listening TCP
// sockets (proto "tcp") or its unconnected UDP sockets (proto "udp").
func ParseProcNet(data []byte, proto string) []Socket {
	var out []Socket
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] == "sl" {
			continue
		}
		want := tcpListen
		if proto == "udp" {
			want = udpClose
		}
		if f[3] != want {
			continue
		}
		addr, port, ok := procAddrPort(f[1])
		if !ok {
			continue
		}
		if proto == "udp" {
			// A connected UDP socket has a peer; only unconnected ones
			// receive from anybody.
			if _, rport, ok := procAddrPort(f[2]); !ok || rport != 0 {
				continue
			}
		}
		s := Socket{Proto: proto, Addr: addr, Port: port}
		if len(f) >= 10 {
			s.Inode, _ = strconv.ParseUint(f[9], 10, 64)
		}
		out = append(out, s)
	}
	return out
}

// procAddrPort decodes "0100007F:0016" (32-bit words in host byte order,
// little-endian on every platform palisade runs on).
func procAddrPort(s string) (netip.Addr, uint16, bool) {
	h, hp, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(hp, 16, 16)
	if err != nil || (len(h) != 8 && len(h) != 32) {
		return netip.Addr{}, 0, false
	}
	b := make([]byte, len(h)/2)
	for i := range b {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return netip.Addr{}, 0, false
		}
		b[i] = byte(v)
	}
	for w := 0; w+4 <= len(b); w += 4 {
		b[w], b[w+1], b[w+2], b[w+3] = b[w+3], b[w+2], b[w+1], b[w]
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), uint16(port), true
}

// Exposed returns the sockets other hosts can reach (not loopback), one
// per protocol and port.
func Exposed(socks []Socket) []Socket {
	var out []Socket
	for _, s := range socks {
		if s.Loopback() {
			continue
		}
		if slices.ContainsFunc(out, func(o Socket) bool { return o.Proto == s.Proto && o.Port == s.Port }) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Listening returns the non-loopback sockets on proto/port.
func Listening(socks []Socket, proto string, port uint16) []Socket {
	var out []Socket
	for _, s := range socks {
		if s.Proto == proto && s.Port == port && !s.Loopback() {
			out = append(out, s)
		}
	}
	return out
}
