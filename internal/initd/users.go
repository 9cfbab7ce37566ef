package initd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// credential resolves user (a name, a uid, or uid:gid / name:group) against
// the container's /etc/passwd and /etc/group, without cgo.
func credential(user, etc string) (*syscall.Credential, error) {
	name, group, _ := strings.Cut(user, ":")
	cred := &syscall.Credential{}
	if uid, err := strconv.ParseUint(name, 10, 32); err == nil {
		cred.Uid, cred.Gid = uint32(uid), uint32(uid)
		if f, ok := passwd(etc, func(f []string) bool { return f[2] == name }); ok {
			gid, _ := strconv.ParseUint(f[3], 10, 32)
			cred.Gid = uint32(gid)
		}
	} else {
		f, ok := passwd(etc, func(f []string) bool { return f[0] == name })
		if !ok {
			return nil, fmt.Errorf("user %q: not in %s", name, filepath.Join(etc, "passwd"))
		}
		uid, _ := strconv.ParseUint(f[2], 10, 32)
		gid, _ := strconv.ParseUint(f[3], 10, 32)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if group != "" {
		if gid, err := strconv.ParseUint(group, 10, 32); err == nil {
			cred.Gid = uint32(gid)
		} else {
			f, ok := groupLine(etc, func(f []string) bool { return f[0] == group })
			if !ok {
				return nil, fmt.Errorf("group %q: not in %s", group, filepath.Join(etc, "group"))
			}
			gid, _ := strconv.ParseUint(f[2], 10, 32)
			cred.Gid = uint32(gid)
		}
	}
	cred.Groups = []uint32{} // no supplementary group but the primary one
	return cred, nil
}

func passwd(etc string, match func([]string) bool) ([]string, bool) {
	return scan(filepath.Join(etc, "passwd"), 7, match)
}

func groupLine(etc string, match func([]string) bool) ([]string, bool) {
	return scan(filepath.Join(etc, "group"), 3, match)
}

func scan(path string, fields int, match func([]string) bool) ([]string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, ":")
		if len(fs) >= fields && match(fs) {
			return fs, true
		}
	}
	return nil, false
}
