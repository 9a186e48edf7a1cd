package track

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// maxFileRead is how much of a track file keepalived reads (track_file.c
// process_track_file: a 128-byte buffer).
const maxFileRead = 127

// ParseFileValue reads the number in a track file as keepalived does
// (track_file.c process_track_file, which uses strtoll with base 0): leading
// white space, an optional sign, then hex after "0x", octal after "0",
// decimal otherwise; anything after the number is ignored and text without
// a number reads as 0. ok is false for a number outside the 32-bit range,
// which keepalived ignores, keeping the previous value.
func ParseFileValue(b []byte) (v int, ok bool) {
	b = b[:min(len(b), maxFileRead)]
	b = bytes.TrimLeft(b, " \t\n\v\f\r")
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	base := 10
	switch {
	case len(b) > 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') && digitVal(b[2]) < 16:
		base, b = 16, b[2:]
	case len(b) > 0 && b[0] == '0':
		base = 8
	}
	var n int64
	for _, c := range b {
		d := digitVal(c)
		if d >= base {
			break
		}
		n = n*int64(base) + int64(d)
		// keepalived accepts up to INT32_MAX+1; anything larger is ignored.
		if n > math.MaxInt32+1 {
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return int(n), true
}

func digitVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 99
}

// InitFile applies a track_file's init_file: it writes the value to the file
// if the file does not exist, or, with overwrite, if it is a regular file
// (track_file.c track_file_end_handler). keepalived does this once at start,
// never on reload; so should the caller.
func InitFile(f *config.TrackFile) error {
	if f.InitFile == nil {
		return nil
	}
	fi, err := os.Stat(f.File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("track_file %s: init_file: %w", f.Name, err)
	case !f.InitOverwrite:
		return nil
	case !fi.Mode().IsRegular():
		return fmt.Errorf("track_file %s: init_file: %s is not a regular file", f.Name, f.File)
	}
	data := strconv.Itoa(*f.InitFile) + "\n"
	if err := os.WriteFile(f.File, []byte(data), 0o644); err != nil {
		return fmt.Errorf("track_file %s: init_file: %w", f.Name, err)
	}
	return nil
}

// File watches a track_file with inotify on its directory, as keepalived
// does (track_file.c init_track_files): a file closed after writing or moved
// in is read again, a file deleted or moved away reads as 0.
type File struct {
	name string
	dir  string
	base string
	log  *slog.Logger
}

// NewFile prepares to watch f. The file's directory must exist; the file
// need not (keepalived reads a missing file as 0). An existing file is
// resolved through symlinks first and its real directory watched, as
// keepalived does (track_file.c init_track_files).
func NewFile(f *config.TrackFile, log *slog.Logger) (*File, error) {
	path, err := filepath.Abs(f.File)
	if err != nil {
		return nil, fmt.Errorf("track_file %s: %w", f.Name, err)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir, base := filepath.Split(path)
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("track_file %s: directory: %w", f.Name, err)
	}
	return &File{name: f.Name, dir: dir, base: base, log: log.With("track_file", f.Name)}, nil
}

// Run sends the file's value at once and again whenever it changes, until
// ctx ends.
func (f *File) Run(ctx context.Context, out chan<- Update) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("track_file %s: inotify: %w", f.name, err)
	}
	// os.NewFile puts the non-blocking descriptor in Go's poller, so a
	// Read blocks only its goroutine and Close wakes it.
	ino := os.NewFile(uintptr(fd), "inotify")
	defer ino.Close()
	stop := context.AfterFunc(ctx, func() { ino.Close() })
	defer stop()
	// Watch before the first read so that no write is missed between them.
	if _, err := unix.InotifyAddWatch(fd, f.dir, unix.IN_CLOSE_WRITE|unix.IN_DELETE|unix.IN_MOVE); err != nil {
		return fmt.Errorf("track_file %s: watch %s: %w", f.name, f.dir, err)
	}

	value := f.read(0)
	if !send(ctx, out, fileUpdate(f.name, value)) {
		return nil
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := ino.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("track_file %s: read inotify: %w", f.name, err)
		}
		changed := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_ISDIR != 0 || string(bytes.TrimRight(nameBytes, "\x00")) != f.base {
				continue
			}
			next := value
			if ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				next = 0
			} else {
				next = f.read(value)
			}
			changed = changed || next != value
			value = next
		}
		if changed && !send(ctx, out, fileUpdate(f.name, value)) {
			return nil
		}
	}
}

// read returns the file's value, or prev if the number in it is out of
// range. A file that cannot be read counts as 0.
func (f *File) read(prev int) int {
	fh, err := os.Open(filepath.Join(f.dir, f.base))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			f.log.Warn("cannot read track file, using 0", "err", err)
		}
		return 0
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileRead))
	if err != nil {
		f.log.Warn("cannot read track file, using 0", "err", err)
		return 0
	}
	v, ok := ParseFileValue(b)
	if !ok {
		f.log.Warn("number in track file out of range, ignored", "content", string(b))
		return prev
	}
	return v
}

func fileUpdate(name string, v int) Update {
	return Update{Kind: KindFile, Name: name, OK: v == 0, Value: v}
}
