// Package ini reads configuration written in fail2ban's INI dialect with
// fail2ban's semantics (fail2ban 1.0.2, client/configparserinc.py and
// client/configreader.py, which build on Python's configparser):
//
//   - Parsing (Parse): "[section]" headers (case-sensitive names),
//     "key = value" and "key: value" (the first '=' or ':' splits), option
//     names lower-cased, lines indented deeper than the option line continue
//     its value (kept as "\n"-separated lines; blank lines inside a value are
//     kept as empty lines, trailing ones dropped), full-line comments
//     starting with '#' or ';', inline comments starting with ';' preceded by
//     whitespace (fail2ban sets inline_comment_prefixes=";" only, so an
//     inline '#' is part of the value). A duplicate section or a duplicate
//     option inside one file is an error, as with Python's strict parser.
//   - Loading (Loader): a configuration NAME is read from NAME.conf,
//     NAME.d/*.conf (sorted), NAME.local, NAME.d/*.local (sorted), each file
//     preceded by its "[INCLUDES] before" files and followed by its "after"
//     files (relative to the including file's directory, or absolute;
//     missing ones ignored; every file is followed by its sibling .local).
//     Include cycles are skipped the way fail2ban skips them and reported
//     in Config.Warnings. Later files override earlier ones key by key; the
//     overridden values stay reachable as %(known/key)s. Sources are layered
//     fs.FS trees (disk directories before the embedded built-ins), the
//     first layer holding a path wins, file by file.
//   - Values (Config.Get, Config.GetEx): [DEFAULT] values are visible in
//     every section, %(name)s interpolation (from caller vars, then the
//     section, then DEFAULT), %(known/name)s, %(section/name)s,
//     %(default/name)s, %(__name__)s, %% escapes, depth limit 10.
//   - SubstituteTags: fail2ban's recursive <tag> substitution
//     (helpers.substituteRecursiveTags), unknown tags left alone.
//   - ExtractOptions / SplitWithOptions: "name[k=v, k2="v, 2"]" arguments.
//
// Every value keeps its origin (file and line) and every error names the
// file, the line and the key where there is one.
package ini
