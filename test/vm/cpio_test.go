package vm

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// an initramfs from (Documentation/driver-api/early-userspace/buffer-format.rst).
// It is written here rather than by cpio(1) so that CI needs one package
// less, and so that the archive's contents come straight from the harness's
// list with no staging directory. Links are not needed: the guest's /init
// makes busybox's applet links itself.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{".": true}}
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
)

func (c *cpioWriter) header(name string, mode uint32, size int) {
	if c.err != nil {
		return
	}
	c.ino++
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize,
	// devmajor, devminor, rdevmajor, rdevminor, namesize, check.
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(name + "\x00"))
	c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// pad aligns the stream to 4 bytes after n bytes of header or data.
func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// mkdirAll adds name and its parents as directories, once each.
func (c *cpioWriter) mkdirAll(name string) {
	name = strings.TrimPrefix(path.Clean(name), "/")
	if c.dirs[name] {
		return
	}
	c.mkdirAll(path.Dir(name))
	c.dirs[name] = true
	c.header(name, modeDir|0o755, 0)
}

// file adds a regular file, creating its directories.
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	name = strings.TrimPrefix(path.Clean(name), "/")
	c.mkdirAll(path.Dir(name))
	c.header(name, modeFile|perm, len(data))
	c.write(data)
	c.pad(len(data))
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0)
	return c.err
}

// sortedKeys returns m's keys in order, so archives are reproducible.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
