package rollback

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBeginRestore(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "etc/ssh/sshd_config")
	newFile := filepath.Join(dir, "etc/palisade/jail.local")
	if err := os.MkdirAll(filepath.Dir(existing), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(existing, []byte("Port 22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st, err := s.Begin("ssh", dir, []string{existing, newFile}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Deadline.Equal(now.Add(time.Minute)) || !st.Pending() {
		t.Errorf("state %+v", st)
	}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	// The change.
	if err := os.WriteFile(existing, []byte("Port 2222\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(newFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newFile, []byte("[sshd]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load()
	if err != nil || loaded.ID != st.ID || len(loaded.Files) != 2 {
		t.Fatalf("load: %+v %v", loaded, err)
	}
	if err := Restore(loaded); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(existing)
	fi, _ := os.Stat(existing)
	if string(got) != "Port 22\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored %q mode %v", got, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/palisade")); !os.IsNotExist(err) {
		t.Errorf("the new file's directory was not removed: %v", err)
	}
}

// TestRestoreSymlink: a configuration file that is a symbolic link (its
// target absolute, inside the root) stays a link: the backup is of its
// target, and Restore puts the link back when something replaced it.
func TestRestoreSymlink(t *testing.T) {
	for _, replaced := range []bool{false, true} {
		dir := t.TempDir()
		link := filepath.Join(dir, "etc/ssh/sshd_config")
		target := filepath.Join(dir, "srv/ssh/sshd_config")
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte("Port 22\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/srv/ssh/sshd_config", link); err != nil {
			t.Fatal(err)
		}
		s := New(dir)
		st, err := s.Begin("ssh", dir, []string{link}, time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if st.Files[0].Link != "/srv/ssh/sshd_config" || !st.Files[0].Existed || st.Files[0].Mode != 0o640 {
			t.Fatalf("backup record %+v", st.Files[0])
		}
		if err := os.WriteFile(target, []byte("Port 2222\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if replaced { // an editor that writes a new file instead of the link
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(link, []byte("Port 2200\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := Restore(st); err != nil {
			t.Fatal(err)
		}
		if l, err := os.Readlink(link); err != nil || l != "/srv/ssh/sshd_config" {
			t.Errorf("replaced=%v: %s is %q, %v; want the link back", replaced, link, l, err)
		}
		if b, _ := os.ReadFile(target); string(b) != "Port 22\n" {
			t.Errorf("replaced=%v: target holds %q", replaced, b)
		}
	}
}

func TestWaitUnconfirmed(t *testing.T) {
	s := New(t.TempDir())
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := s.Begin("ssh", "", nil, time.Second, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	past := func() time.Time { return clock.Add(2 * time.Second) }
	if due, err := s.WaitUnconfirmed(ctx, st.ID, time.Millisecond, past); !due || err != nil {
		t.Errorf("past deadline: %v %v", due, err)
	}
	if due, _ := s.WaitUnconfirmed(ctx, "other", time.Millisecond, past); due {
		t.Error("another change's watcher rolls back")
	}
	st.Confirmed = true
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.WaitUnconfirmed(ctx, st.ID, time.Millisecond, past); due {
		t.Error("confirmed change due")
	}
	// Before the deadline it waits; cancellation ends the wait.
	st.Confirmed = false
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if due, err := s.WaitUnconfirmed(cctx, st.ID, 10*time.Millisecond, func() time.Time { return clock }); due || err == nil {
		t.Errorf("before deadline: %v %v", due, err)
	}
}

func TestLockExcludes(t *testing.T) {
	s := New(t.TempDir())
	unlock, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx); err == nil {
		t.Fatal("second lock acquired")
	}
	unlock()
	u2, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

func TestPrune(t *testing.T) {
	s := New(t.TempDir())
	for i := range keepBackups + 5 {
		if _, err := s.Begin("ssh", "", nil, time.Minute, time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "backups"))
	if len(ents) != keepBackups {
		t.Errorf("%d backups kept, want %d", len(ents), keepBackups)
	}
}
