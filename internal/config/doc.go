// Package config builds palisade's typed, validated configuration model
// (jails, filters, actions) from fail2ban-style configuration directories
// and palisade's embedded built-ins. Reading the INI dialect itself
// (includes, .local overrides, interpolation, <tag> substitution) is
// package config/ini; this package gives the values their meaning, e.g.
// LoadFilter turns a filter.d definition into a filter.Definition the way
// fail2ban's FilterReader does.
package config
