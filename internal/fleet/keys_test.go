package fleet

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeygenAndRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "fleet.key")
	pub, err := GenerateKey(path, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	priv, err := ReadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("public key of the read key differs")
	}
	if _, err := GenerateKey(path, false); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second keygen without force: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKey(path); err == nil || !strings.Contains(err.Error(), "readable by group") {
		t.Fatalf("group-readable key accepted: %v", err)
	}
	if _, err := ReadKey(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "palisade fleet keygen") {
		t.Fatalf("missing key: %v", err)
	}
	k, err := ParsePublicKey(FormatPublicKey(pub))
	if err != nil || !k.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
}

func TestTrustFile(t *testing.T) {
	pubA, _ := testKey(t)
	pubB, _ := testKey(t)
	path := filepath.Join(t.TempDir(), "fleet.trust")
	if tr, err := ReadTrust(path); err != nil || tr.Len() != 0 {
		t.Fatalf("missing trust file: %v %v", tr, err)
	}
	if err := TrustAdd(path, "web1", pubA, false); err != nil {
		t.Fatal(err)
	}
	if err := TrustAdd(path, "web2", pubB, false); err != nil {
		t.Fatal(err)
	}
	if err := TrustAdd(path, "web1", pubA, false); err != nil {
		t.Fatalf("adding the same key again: %v", err)
	}
	if err := TrustAdd(path, "web1", pubB, false); err == nil || !strings.Contains(err.Error(), "fleet.trust:3: origin web1 is already trusted") {
		t.Fatalf("another key for web1: %v", err)
	}
	tr, err := ReadTrust(path)
	if err != nil || strings.Join(tr.Names(), ",") != "web1,web2" {
		t.Fatalf("trust %v, %v", tr.Names(), err)
	}
	if err := TrustAdd(path, "web1", pubB, true); err != nil {
		t.Fatal(err)
	}
	tr, _ = ReadTrust(path)
	if k, _ := tr.Key("web1"); !k.Equal(pubB) {
		t.Fatal("--replace did not replace the key")
	}
	if ok, err := TrustRemove(path, "web1"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, _ := TrustRemove(path, "web1"); ok {
		t.Fatal("removed twice")
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# palisade fleet trust file") || strings.Contains(string(data), "web1") {
		t.Fatalf("file after remove:\n%s", data)
	}

	for _, c := range []struct{ text, want string }{
		{"web1\n", "t:1: want NAME ed25519:KEY"},
		{"# c\nweb.1 " + FormatPublicKey(pubA) + "\n", "t:2: invalid origin name"},
		{"web1 ssh-ed25519:AAAA\n", "t:1: public key"},
		{"web1 ed25519:AAAA\n", "not 32 bytes"},
		{"web1 " + FormatPublicKey(pubA) + "\nweb1 " + FormatPublicKey(pubB) + "\n", "t:2: origin web1 already listed on line 1"},
	} {
		if _, err := ParseTrust("t", []byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}
