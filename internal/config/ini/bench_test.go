package ini

import (
	"os"
	"testing"
)

// BenchmarkReadStockJail reads /etc/fail2ban's jail configuration
// (jail.conf with its paths-*.conf includes and jail.d) and interpolates
// every option of every section.
func BenchmarkReadStockJail(b *testing.B) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		b.Skip("/etc/fail2ban not installed")
	}
	l := &Loader{Layers: []Layer{DirLayer("/etc/fail2ban")}}
	b.ReportAllocs()
	for b.Loop() {
		c, err := l.Read("jail")
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range c.Sections() {
			keys, _ := c.Options(s, true)
			for _, k := range keys {
				_, _ = c.Get(s, k, nil)
			}
		}
	}
}
