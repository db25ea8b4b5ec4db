package sshd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"path/filepath"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// User is a login account from /etc/passwd.
type User struct {
	Name  string
	UID   string
	Home  string
	Shell string
}

// CanLogIn reports whether the account has a login shell.
func (u User) CanLogIn() bool {
	sh := u.Shell
	if sh == "" {
		return true // the system default shell
	}
	for _, no := range []string{"nologin", "false", "sync", "shutdown", "halt"} {
		if filepath.Base(sh) == no {
			return false
		}
	}
	return true
}

// LoadUsers reads passwd(5) under root.
func LoadUsers(root string) ([]User, error) {
	data, err := fsx.ReadFileIn(root, fsx.Path(root, "/etc/passwd"))
	if err != nil {
		return nil, err
	}
	var out []User
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		out = append(out, User{Name: f[0], UID: f[2], Home: f[5], Shell: f[6]})
	}
	return out, sc.Err()
}

// KeyFiles expands sshd's AuthorizedKeysFile patterns (%h, %u, %U, %%;
// relative paths are relative to the home directory) for u, root-prefixed.
func KeyFiles(root string, patterns []string, u User) []string {
	var out []string
	for _, p := range patterns {
		if strings.EqualFold(p, "none") {
			continue
		}
		var sb strings.Builder
		for i := 0; i < len(p); i++ {
			if p[i] != '%' || i+1 == len(p) {
				sb.WriteByte(p[i])
				continue
			}
			i++
			switch p[i] {
			case 'h':
				sb.WriteString(u.Home)
			case 'u':
				sb.WriteString(u.Name)
			case 'U':
				sb.WriteString(u.UID)
			case '%':
				sb.WriteByte('%')
			default:
				sb.WriteByte('%')
				sb.WriteByte(p[i])
			}
		}
		path := sb.String()
		if !filepath.IsAbs(path) {
			path = filepath.Join(u.Home, path)
		}
		out = append(out, fsx.Path(root, path))
	}
	return out
}

// keyTypes are the public key algorithms sshd accepts in authorized_keys.
var keyPrefixes = []string{"ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-"}

// CountKeys returns how many usable key lines data holds: a known key type
// followed by base64 that decodes to a blob naming the same type.
func CountKeys(data []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		for i := 0; i+1 < len(fields); i++ {
			if !isKeyType(fields[i]) {
				continue
			}
			blob, err := base64.StdEncoding.DecodeString(fields[i+1])
			if err == nil && len(blob) > 4+len(fields[i]) && string(blob[4:4+len(fields[i])]) == fields[i] {
				n++
				break
			}
		}
	}
	return n
}

func isKeyType(s string) bool {
	for _, p := range keyPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// UserKeys is a login user's authorized keys.
type UserKeys struct {
	User  string   `json:"user"`
	Files []string `json:"files,omitempty"` // files holding keys
	Keys  int      `json:"keys"`
}

// KeysOf counts u's usable keys in the files the patterns name.
func KeysOf(root string, patterns []string, u User) UserKeys {
	uk := UserKeys{User: u.Name}
	for _, f := range KeyFiles(root, patterns, u) {
		data, err := fsx.ReadFileIn(root, f)
		if err != nil {
			continue
		}
		if n := CountKeys(data); n > 0 {
			uk.Keys += n
			uk.Files = append(uk.Files, f)
		}
	}
	return uk
}

// LoginUsers returns the accounts sshd would let log in: a login shell,
// allowed by AllowUsers and not in DenyUsers (user-name patterns only;
// host parts and groups are not evaluated), root only when
// PermitRootLogin is not "no".
func LoginUsers(users []User, eff Effective) []User {
	allow := splitAll(eff["allowusers"])
	deny := splitAll(eff["denyusers"])
	var out []User
	for _, u := range users {
		if !u.CanLogIn() {
			continue
		}
		if u.UID == "0" && eff.Get("permitrootlogin") == "no" {
			continue
		}
		if len(allow) > 0 && !matchAnyUser(allow, u.Name) {
			continue
		}
		if matchAnyUser(deny, u.Name) {
			continue
		}
		out = append(out, u)
	}
	return out
}

func splitAll(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func matchAnyUser(pats []string, name string) bool {
	for _, p := range pats {
		userPat, _, _ := strings.Cut(p, "@")
		if ok, _ := filepath.Match(userPat, name); ok {
			return true
		}
	}
	return false
}
