package filetransfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// MaxNameBytes is the longest file name a receiver writes as sent; longer
// names are replaced by a generated one. It leaves room under the usual
// 255-byte limit for the "received-" prefix and a " (n)" suffix.
const MaxNameBytes = 200

// SafeName returns name when it is safe to create as a file directly in a
// directory, and otherwise a generated name "file-<fallback>". Unsafe are:
// empty names, "." and "..", names with '/', '\\', NUL or any other control
// or invisible formatting character (such as bidirectional overrides),
// invalid UTF-8 and names longer than MaxNameBytes. A name starting with '.'
// or '-' (hidden, or read as an option by shell tools) is kept with a "_"
// prefix. The second result reports whether name was kept (possibly with
// that prefix).
func SafeName(name, fallback string) (string, bool) {
	if !plainName(name) {
		return "file-" + fallback, false
	}
	if name[0] == '.' || name[0] == '-' {
		name = "_" + name
	}
	return name, true
}

func plainName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '/' || r == '\\' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// placeUnique moves the finished temporary file tmp into dir under name,
// never replacing an existing file: if name is taken it tries "stem (1).ext",
// "stem (2).ext", ... It returns the final path. The move is atomic
// (renameat2 RENAME_NOREPLACE, or a hard link where the file system lacks
// it), so a concurrent writer of the same name is never overwritten either.
func placeUnique(tmp, dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" {
		stem, ext = name, ""
	}
	for n := 0; n < 10000; n++ {
		cand := name
		if n > 0 {
			cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
		}
		final := filepath.Join(dir, cand)
		err := renameNoReplace(tmp, final)
		if err == nil {
			return final, syncDir(dir)
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("move received file into place: %w", err)
		}
	}
	return "", fmt.Errorf("move received file into place: 10000 files named like %q already exist", name)
}

// renameNoReplace renames oldpath to newpath unless newpath exists
// (fs.ErrExist then).
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fs.ErrExist
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		// The file system cannot rename without replacing: a hard link
		// fails on an existing name just as well.
		if err := os.Link(oldpath, newpath); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fs.ErrExist
			}
			return err
		}
		return os.Remove(oldpath)
	}
	return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
}

// syncDir flushes a directory's entries (a rename is durable only then).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsynced and renamed over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
