package sshd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Effective is the configuration sshd reports with -T: keyword (lower
// case) to values, one entry per output line (Port, ListenAddress and
// similar keywords repeat).
type Effective map[string][]string

// Get returns the first value of keyword ("" when absent).
func (e Effective) Get(keyword string) string {
	v := e[strings.ToLower(keyword)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// ParseEffective parses "sshd -T" output.
func ParseEffective(out []byte) Effective {
	e := Effective{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if k == "" {
			continue
		}
		k = strings.ToLower(k)
		e[k] = append(e[k], strings.TrimSpace(v))
	}
	return e
}

// Daemon runs the sshd binary against one configuration tree.
type Daemon struct {
	Runner sysexec.Runner
	// Binary is the sshd program (default "sshd", found on PATH).
	Binary string
	// Root is the --root prefix; Config the full path of the main file.
	Root   string
	Config string
}

// NewDaemon returns a Daemon for the main configuration under root.
func NewDaemon(r sysexec.Runner, root string) *Daemon {
	return &Daemon{Runner: r, Binary: "sshd", Root: root, Config: fsx.Path(root, DefaultConfig)}
}

// baseArgs are -f and, under a root, -h for each host key found there
// (sshd refuses to test a configuration without a host key).
func (d *Daemon) baseArgs() []string {
	args := []string{"-f", d.Config}
	if d.Root != "" && d.Root != "/" {
		keys, _ := filepath.Glob(fsx.Path(d.Root, "/etc/ssh/ssh_host_*_key"))
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "-h", k)
		}
	}
	return args
}

// Test runs "sshd -t" and returns its complaint on failure.
func (d *Daemon) Test(ctx context.Context) error {
	args := append([]string{"-t"}, d.baseArgs()...)
	if _, err := d.Runner.Run(ctx, sysexec.Cmd{Name: d.Binary, Args: args}); err != nil {
		return fmt.Errorf("sshd -t rejects the configuration: %w", err)
	}
	return nil
}

// Conn describes a connection for "sshd -T -C".
type Conn struct {
	User, Host, Addr string
}

func (c Conn) spec() string {
	var parts []string
	if c.User != "" {
		parts = append(parts, "user="+c.User)
	}
	if c.Host != "" {
		parts = append(parts, "host="+c.Host)
	}
	if c.Addr != "" {
		parts = append(parts, "addr="+c.Addr)
	}
	return strings.Join(parts, ",")
}

// Effective runs "sshd -T", with -C for conn when it is not nil.
func (d *Daemon) Effective(ctx context.Context, conn *Conn) (Effective, error) {
	args := append([]string{"-T"}, d.baseArgs()...)
	if conn != nil {
		args = append(args, "-C", conn.spec())
	}
	res, err := d.Runner.Run(ctx, sysexec.Cmd{Name: d.Binary, Args: args})
	if err != nil {
		return nil, fmt.Errorf("sshd -T: %w", err)
	}
	e := ParseEffective(res.Stdout)
	if len(e) == 0 {
		return nil, fmt.Errorf("sshd -T printed no configuration")
	}
	return e, nil
}
