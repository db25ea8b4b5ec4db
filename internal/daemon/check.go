package daemon

import (
	"github.com/palisade-project/palisade/internal/config"
)

// CheckReport is the result of `palisade config check` (its --json form).
type CheckReport struct {
	OK        bool             `json:"ok"`
	ConfigDir string           `json:"config_dir"`
	Errors    config.ErrorList `json:"errors"`
	Warnings  []string         `json:"warnings"`
	Jails     []CheckedJail    `json:"jails"`
	Files     []string         `json:"files"`
}

// CheckedJail is one enabled jail in a CheckReport.
type CheckedJail struct {
	Name     string   `json:"name"`
	Filter   string   `json:"filter"`
	LogPaths []string `json:"logpath"`
	Backend  string   `json:"backend"`
	MaxRetry int      `json:"maxretry"`
	FindTime string   `json:"findtime"`
	BanTime  string   `json:"bantime"`
	// Firewall is how the jail's bans are enforced: a native backend kind
	// its banaction maps to, "exec:ACTION" for an action.d file, or
	// "default" (the [firewall] backend or auto detection).
	Firewall string `json:"firewall"`
	// Error is set when the jail's filter or action cannot be loaded or
	// compiled.
	Error string `json:"error,omitempty"`
}

// Check loads the configuration as the daemon would, compiles every
// enabled jail's filter and chooses (compiling action.d files) how its
// bans are enforced. Nothing is started.
func Check(opts Options) CheckReport {
	rep := CheckReport{ConfigDir: opts.ConfigDir, Errors: config.ErrorList{}, Warnings: []string{}, Jails: []CheckedJail{}}
	cfg, err := LoadConfig(opts)
	if err != nil {
		rep.Errors = config.AsErrorList(err)
		return rep
	}
	rep.Files = cfg.Files
	rep.Warnings = append(rep.Warnings, cfg.Warnings...)
	for _, j := range cfg.Enabled() {
		cj := CheckedJail{Name: j.Name, Filter: j.Filter.Raw, LogPaths: j.LogPatterns(), Backend: j.BackendName,
			MaxRetry: j.MaxRetry, FindTime: j.FindTime.String(), BanTime: durText(j.BanTime)}
		if cj.LogPaths == nil {
			cj.LogPaths = []string{}
		}
		def, err := opts.LoadFilter(cfg, j)
		if err == nil {
			_, err = opts.NewFilter(def, j)
		}
		if err != nil {
			cj.Error = err.Error()
			rep.Errors = append(rep.Errors, &config.Error{File: j.File, Line: j.Line, Section: j.Name, Key: "filter", Msg: err.Error()})
		}
		rt, err := ChooseRoute(cfg, j)
		if err != nil {
			if cj.Error != "" {
				cj.Error += "; "
			}
			cj.Error += err.Error()
			rep.Errors = append(rep.Errors, config.AsErrorList(err)...)
		} else {
			cj.Firewall = rt.String()
			for _, ig := range rt.Ignored {
				rep.Warnings = append(rep.Warnings, "jail "+j.Name+": action "+ig+" is not run (palisade runs one ban action per jail)")
			}
		}
		rep.Jails = append(rep.Jails, cj)
	}
	rep.OK = len(rep.Errors) == 0
	return rep
}
