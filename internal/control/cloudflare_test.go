package control

import (
	"errors"
	"testing"
)

func TestCloudflareRequests(t *testing.T) {
	for _, ok := range []string{
		`{"verb":"cloudflare","cloudflare":{"op":"status"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"off"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"sync","source":"https://example.org/ips","ports":"80,443","dry_run":true,"force":true}}`,
	} {
		if _, err := DecodeRequest([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{
		`{"verb":"cloudflare"}`,
		`{"verb":"status","cloudflare":{"op":"status"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"reboot"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"off","force":true}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"status","source":"/x"}}`,
		`{"verb":"cloudflare","jail":"sshd","cloudflare":{"op":"status"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"sync","source":"/x\n"}}`,
		`{"verb":"cloudflare","cloudflare":{"op":"sync","extra":1}}`,
	} {
		if _, err := DecodeRequest([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want a bad request", bad, err)
		}
	}
}
