package control

import (
	"context"
	"strings"
)

// Cloudflare operations.
const (
	CloudflareSync   = "sync"   // replies cloudflare.SyncResult
	CloudflareStatus = "status" // replies cloudflare.Status
	CloudflareOff    = "off"    // replies CloudflareOffReply
)

// CloudflareArgs are the arguments of VerbCloudflare. The reply types live
// in internal/cloudflare; the control channel carries them as JSON.
type CloudflareArgs struct {
	Op string `json:"op"`
	// Source is a URL or an absolute file path (sync only).
	Source string `json:"source,omitempty"`
	// Ports is a port list such as "80,443" (sync only).
	Ports  string `json:"ports,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

// CloudflareOffReply answers the off operation.
type CloudflareOffReply struct {
	Removed bool `json:"removed"`
}

// maxCloudflareArg bounds Source and Ports.
const maxCloudflareArg = 2048

func (a *CloudflareArgs) validate() error {
	switch a.Op {
	case CloudflareSync:
	case CloudflareStatus, CloudflareOff:
		if a.Source != "" || a.Ports != "" || a.DryRun || a.Force {
			return badRequest("cloudflare %s takes no arguments", a.Op)
		}
	default:
		return badRequest("unknown cloudflare operation %q", truncate(a.Op))
	}
	if len(a.Source) > maxCloudflareArg || len(a.Ports) > maxCloudflareArg {
		return badRequest("cloudflare argument too long")
	}
	if strings.ContainsAny(a.Source+a.Ports, "\x00\n\r") {
		return badRequest("control characters in a cloudflare argument")
	}
	return nil
}

// Cloudflare runs a cloudflare operation and decodes its reply into out.
func (c *Client) Cloudflare(ctx context.Context, args CloudflareArgs, out any) error {
	return c.Call(ctx, Request{Verb: VerbCloudflare, Cloudflare: &args}, out)
}
