package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// What `ganger completion` completes: commands, ctl's subcommands and the
// flags of each (completion_test.go checks them against the commands'
// own -h and ctlUsage).

// complFlag is a flag and what its value is.
type complFlag struct {
	name string
	arg  string // "": a boolean; "file", "dir", "value" (free), or "a|b|c": one of these
}

type complCmd struct {
	name, help string
	flags      []complFlag
	words      []string            // the first word after it (ctl: its subcommands)
	next       map[string][]string // the word after that, by the first
}

var complCommands = []complCmd{
	{name: "serve", help: "run Ganger", flags: []complFlag{{"config", "file"}, {"pid-file", "file"}}},
	{name: "check", help: "validate a config file", flags: []complFlag{{"config", "file"}}},
	{name: "reload", help: "reload a running Ganger's config", flags: []complFlag{{"pid-file", "file"}, {"config", "file"}}},
	{name: "ctl", help: "see and steer a running Ganger",
		flags: []complFlag{{"api", "value"}, {"token", "value"}, {"json", ""}, {"timeout", "value"}},
		words: []string{"status", "sessions", "hosts", "kill", "drain", "undrain", "reload",
			"instances", "instance", "clusters", "cluster"},
		next: map[string][]string{
			"instances": {"all"},
			"instance":  {"create", "get", "extend", "restart", "delete"},
			"cluster":   {"scale", "replace", "logs", "restart", "start", "stop", "signal"},
		}},
	{name: "agent", help: "register this Docker host in etcd", flags: []complFlag{
		{"etcd", "value"}, {"name", "value"}, {"docker", "value"}, {"advertise", "value"}, {"prefix", "value"},
		{"state-dir", "dir"}, {"max-containers", "value"}, {"labels", "value"}, {"ttl", "value"},
		{"drain-timeout", "value"}, {"docker-ca", "file"}, {"docker-cert", "file"}, {"docker-key", "file"},
		{"etcd-ca", "file"}, {"etcd-cert", "file"}, {"etcd-key", "file"}, {"etcd-username", "value"},
		{"etcd-password-file", "file"}, {"log-level", "debug|info|warn|error"}, {"log-format", "text|json"}}},
	{name: "version", help: "print the version, commit, build date and Go version"},
	{name: "completion", help: "print a shell completion script", words: []string{"bash", "zsh"}},
	{name: "help", help: "print the usage"},
}

// ctlInstanceFlags are the flags of ctl instance create SVC (after SVC).
var ctlInstanceFlags = []complFlag{{"ttl", "value"}}

// completion prints the completion script for a shell.
func completion(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: ganger completion bash|zsh")
		return errUsage
	}
	switch args[0] {
	case "bash":
		io.WriteString(stdout, bashCompletion())
	case "zsh":
		io.WriteString(stdout, zshCompletion())
	default:
		fmt.Fprintf(stderr, "ganger completion: no script for %q (bash, zsh)\nusage: ganger completion bash|zsh\n", args[0])
		return errUsage
	}
	return nil
}

// flagsOf lists the flags whose value is kind ("file", "dir", "value";
// "choice": any list of choices), each once, as shell patterns
// (-f|--f|...).
func flagsOf(kind string) string {
	var names []string
	for _, c := range complCommands {
		for _, f := range append(slices.Clone(c.flags), ctlInstanceFlags...) {
			k := f.arg
			if strings.Contains(k, "|") {
				k = "choice"
			}
			if k == kind && !slices.Contains(names, "-"+f.name) {
				names = append(names, "-"+f.name, "--"+f.name)
			}
		}
	}
	return strings.Join(names, "|")
}

// flagsAt is where a command's flags go, as a pattern of the number of
// words before the cursor: a command with subcommands (ctl) takes its own
// flags before them only; the others anywhere.
func flagsAt(c complCmd) string {
	if len(c.words) > 0 {
		return "1"
	}
	return "*"
}

// dashed is a command's flags as --name words.
func dashed(flags []complFlag) string {
	var w []string
	for _, f := range flags {
		w = append(w, "--"+f.name)
	}
	return strings.Join(w, " ")
}

func commandNames() string {
	var w []string
	for _, c := range complCommands {
		w = append(w, c.name)
	}
	return strings.Join(w, " ")
}

func bashCompletion() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for ganger: ganger completion bash
# Load it with: source <(ganger completion bash)
# or save it as /usr/share/bash-completion/completions/ganger.

_ganger_words() {
    local IFS=$' \t\n'
    COMPREPLY=($(compgen -W "$1" -- "$cur"))
}

_ganger() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev= i w
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
    # --flag=value: readline splits it at '=' (COMP_WORDBREAKS).
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
    COMPREPLY=()
    case $prev in
    %s)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    %s)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        return ;;
`, flagsOf("file"), flagsOf("dir"))
	for _, c := range complCommands {
		for _, f := range c.flags {
			if strings.Contains(f.arg, "|") {
				fmt.Fprintf(&b, "    -%s|--%s)\n        _ganger_words %q\n        return ;;\n", f.name, f.name, strings.ReplaceAll(f.arg, "|", " "))
			}
		}
	}
	fmt.Fprintf(&b, `    %s)
        return ;; # a value: nothing to offer
    esac

    # The words so far that are neither flags nor their values: the
    # command, then its subcommands.
    local -a pos=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -*=*) ;;
        -*)
            if [[ ${COMP_WORDS[i+1]} == = ]]; then
                ((i += 2))
            else
                case $w in
                %s) ((i++)) ;;
                esac
            fi ;;
        *) pos+=("$w") ;;
        esac
    done

    if ((${#pos[@]} == 0)); then
        if [[ $cur == -* ]]; then
            _ganger_words "--help --version"
        else
            _ganger_words %q
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        case ${#pos[@]}:${pos[0]} in
`, flagsOf("value"), strings.Join([]string{flagsOf("file"), flagsOf("dir"), flagsOf("value"), flagsOf("choice")}, "|"), commandNames())
	for _, c := range complCommands {
		if len(c.flags) > 0 {
			fmt.Fprintf(&b, "        %s:%s) _ganger_words %q ;;\n", flagsAt(c), c.name, dashed(c.flags))
		}
	}
	fmt.Fprintf(&b, `        esac
        if ((${#pos[@]} == 4)) && [[ "${pos[0]} ${pos[1]} ${pos[2]}" == "ctl instance create" ]]; then
            _ganger_words %q
        fi
        return
    fi
    case ${#pos[@]}:${pos[0]} in
    1:help) _ganger_words %q ;;
`, dashed(ctlInstanceFlags), commandNames())
	for _, c := range complCommands {
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "    1:%s) _ganger_words %q ;;\n", c.name, strings.Join(c.words, " "))
		}
		if len(c.next) > 0 {
			fmt.Fprintf(&b, "    2:%s)\n        case ${pos[1]} in\n", c.name)
			for _, k := range slices.Sorted(maps.Keys(c.next)) {
				fmt.Fprintf(&b, "        %s) _ganger_words %q ;;\n", k, strings.Join(c.next[k], " "))
			}
			b.WriteString("        esac ;;\n")
		}
	}
	b.WriteString(`    esac
}

complete -F _ganger ganger
`)
	return b.String()
}

func zshCompletion() string {
	var b strings.Builder
	fmt.Fprintf(&b, `#compdef ganger
# zsh completion for ganger: ganger completion zsh
# Save it as _ganger in a directory of $fpath (before compinit runs), or
# load it after compinit with: source <(ganger completion zsh)

_ganger() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]} i w
    case $prev in
    (%s) _files; return ;;
    (%s) _files -/; return ;;
`, flagsOf("file"), flagsOf("dir"))
	for _, c := range complCommands {
		for _, f := range c.flags {
			if strings.Contains(f.arg, "|") {
				fmt.Fprintf(&b, "    (-%s|--%s) compadd -- %s; return ;;\n", f.name, f.name, strings.ReplaceAll(f.arg, "|", " "))
			}
		}
	}
	fmt.Fprintf(&b, `    (%s) _message 'value'; return ;;
    esac

    local -a pos
    for ((i = 2; i < CURRENT; i++)); do
        w=${words[i]}
        case $w in
        (-*=*) ;;
        (%s) ((i++)) ;;
        (-*) ;;
        (*) pos+=("$w") ;;
        esac
    done

    if ((${#pos} == 0)); then
        if [[ $cur == -* ]]; then
            compadd -- --help --version
        else
            local -a cmds=(
`, flagsOf("value"), strings.Join([]string{flagsOf("file"), flagsOf("dir"), flagsOf("value"), flagsOf("choice")}, "|"))
	for _, c := range complCommands {
		fmt.Fprintf(&b, "                %s\n", zshQuote(c.name+":"+c.help))
	}
	b.WriteString(`            )
            _describe 'command' cmds
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        case ${#pos}:${pos[1]} in
`)
	for _, c := range complCommands {
		if len(c.flags) > 0 {
			fmt.Fprintf(&b, "        (%s:%s) compadd -- %s ;;\n", flagsAt(c), c.name, dashed(c.flags))
		}
	}
	fmt.Fprintf(&b, `        esac
        if ((${#pos} == 4)) && [[ "${pos[1]} ${pos[2]} ${pos[3]}" == "ctl instance create" ]]; then
            compadd -- %s
        fi
        return
    fi
    case ${#pos}:${pos[1]} in
    (1:help) compadd -- %s ;;
`, dashed(ctlInstanceFlags), commandNames())
	for _, c := range complCommands {
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "    (1:%s) compadd -- %s ;;\n", c.name, strings.Join(c.words, " "))
		}
		if len(c.next) > 0 {
			fmt.Fprintf(&b, "    (2:%s)\n        case ${pos[2]} in\n", c.name)
			for _, k := range slices.Sorted(maps.Keys(c.next)) {
				fmt.Fprintf(&b, "        (%s) compadd -- %s ;;\n", k, strings.Join(c.next[k], " "))
			}
			b.WriteString("        esac ;;\n")
		}
	}
	b.WriteString(`    esac
}

if [[ ${funcstack[1]} == _ganger ]]; then
    _ganger "$@"
else
    compdef _ganger ganger
fi
`)
	return b.String()
}

// zshQuote quotes s for zsh, in single quotes.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
