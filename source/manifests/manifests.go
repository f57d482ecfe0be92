package manifests

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source"
)

// Source watches a directory of manifests.
type Source struct {
	dir string
	options
	listed atomic.Bool

	files    map[string]*file                 // by path
	current  map[engine.ObjectRef]*definition // what the sink has been given
	skipped  map[string]string                // paths passed over, and why: each is reported once
	realRoot string                           // dir with its symlinks resolved
	missing  atomic.Pointer[error]            // why the directory cannot be read now (nil: it can)
	parent   string                           // the folder watched while dir is missing ("": none)
}

var _ source.Staleness = (*Source)(nil)

// Stale says why the directory cannot be read now; the mesh keeps what it last held.
func (s *Source) Stale() error {
	if p := s.missing.Load(); p != nil {
		return *p
	}
	return nil
}

var _ source.Source = (*Source)(nil)

type file struct {
	stat    fileStat
	objects []definition // the last good parse
	failed  bool         // the latest content did not parse (objects are older)
	invalid int          // objects of the latest content left out as invalid
}

type fileStat struct {
	size    int64
	modTime time.Time
}

type definition struct {
	obj    *engine.Parsed
	digest [sha256.Size]byte // of the canonical form, to tell real edits from rewrites
	path   string
	line   int
}

type options struct {
	log             *slog.Logger
	quiet, maxDelay time.Duration
	maxFileBytes    int64
	readable        prometheus.Gauge
	problems        *prometheus.GaugeVec
}

// WithMetrics registers broadcaster_manifests_directory_readable (1 while the directory can be
// read, 0 while it is gone and the mesh keeps its last content) and
// broadcaster_manifests_problems{problem} (files that do not parse, objects left out as invalid).
func WithMetrics(r prometheus.Registerer) Option {
	return func(o *options) error {
		if _, err := option.Required("metrics", r); err != nil {
			return err
		}
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "broadcaster_manifests_directory_readable",
			Help: "1 while the manifests directory can be read; 0 while it is missing (the mesh keeps what it last read)."})
		p := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "broadcaster_manifests_problems",
			Help: "Manifest problems now: files whose latest content does not parse (their objects are kept as last read), objects left out as invalid."},
			[]string{"problem"})
		for _, c := range []prometheus.Collector{g, p} {
			if err := r.Register(c); err != nil {
				return err
			}
		}
		o.readable, o.problems = g, p
		return nil
	}
}

// DefaultMaxFileBytes bounds the size of a manifest file.
const DefaultMaxFileBytes = 16 << 20

// WithMaxFileBytes refuses manifest files larger than n bytes (their objects stay as last read).
func WithMaxFileBytes(n int64) Option {
	return func(o *options) (err error) { o.maxFileBytes, err = option.Positive("max file size", n); return err }
}

// Option configures a Source.
type Option = option.Func[options]

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithDebounce sets how long the directory must stay quiet before a rescan, and the longest a
// rescan may wait under continuous writes.
func WithDebounce(quiet, maxDelay time.Duration) Option {
	return func(o *options) error {
		if quiet <= 0 || maxDelay < quiet {
			return option.Invalid("debounce", "want 0 < quiet (%v) <= max delay (%v)", quiet, maxDelay)
		}
		o.quiet, o.maxDelay = quiet, maxDelay
		return nil
	}
}

// Debounce defaults.
const (
	DefaultQuiet    = 50 * time.Millisecond
	DefaultMaxDelay = 300 * time.Millisecond
)

// New returns a source for dir, which must be a readable directory.
// Defaults: no logging, debounce DefaultQuiet / DefaultMaxDelay.
func New(dir string, opts ...Option) (*Source, error) {
	o, err := prepare(dir, opts)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, option.Invalid("manifests", "%v", err)
	}
	return &Source{dir: dir, options: o, files: map[string]*file{}, current: map[engine.ObjectRef]*definition{},
		skipped: map[string]string{}, realRoot: root}, nil
}

// Check says whether New would accept dir and opts.
func Check(dir string, opts ...Option) error {
	_, err := prepare(dir, opts)
	return err
}

func prepare(dir string, opts []Option) (options, error) {
	o := options{log: option.Discard(), quiet: DefaultQuiet, maxDelay: DefaultMaxDelay, maxFileBytes: DefaultMaxFileBytes}
	if err := option.Apply(&o, opts...); err != nil {
		return o, err
	}
	info, err := os.Stat(dir)
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err // the caller names the directory
	}
	if err != nil {
		return o, option.Invalid("manifests", "%v", err)
	}
	if !info.IsDir() {
		return o, option.Invalid("manifests", "not a directory")
	}
	return o, nil
}

// Listed reports whether the first full read of the directory has been delivered.
func (s *Source) Listed() bool { return s.listed.Load() }

// Run reads the directory and sends its objects as one batch (Replace), then sends each
// change (a debounced burst of file events) as one batch, until ctx ends.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", s.dir, err)
	}
	defer w.Close()

	s.rescan(w, nil, sink, true)
	s.listed.Store(true)

	var (
		timer    = time.NewTimer(time.Hour)
		pending  = map[string]bool{}
		deadline time.Time
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("manifests watcher closed")
			}
			pending[ev.Name] = true
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(s.maxDelay)
			}
			timer.Reset(min(s.quiet, max(0, deadline.Sub(now))))
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("manifests watcher closed")
			}
			// An overflow loses events: a rescan of everything catches up.
			s.log.Warn("manifests watcher error; rescanning", "dir", s.dir, "err", err)
			pending[s.dir] = true
			timer.Reset(s.quiet)
		case <-timer.C:
			s.rescan(w, pending, sink, false)
			pending, deadline = map[string]bool{}, time.Time{}
		}
	}
}

// rescan walks the directory, re-reads files that changed (or that events named), and sends
// the sink the difference between the new merged view and the last one. A directory that
// is gone changes nothing: the mesh keeps its content until the directory is back.
func (s *Source) rescan(w *fsnotify.Watcher, touched map[string]bool, sink source.Sink, initial bool) {
	if !s.present(w) {
		if initial {
			s.deliver(sink, initial)
		}
		return
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			s.log.Warn("cannot read manifests path", "path", path, "err", err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if path != s.dir && ignored(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if err := w.Add(path); err != nil {
				s.log.Warn("cannot watch manifests folder", "path", path, "err", err)
			}
			return nil
		}
		if !isManifest(d.Name()) {
			return nil
		}
		info, why := s.regularFile(path, d)
		if why != "" {
			if s.skipped[path] != why {
				s.skipped[path] = why
				s.log.Warn("manifest path passed over", "file", s.rel(path), "why", why)
			}
			if _, had := s.files[path]; had {
				seen[path] = true // what it held stays as last read
			}
			return nil
		}
		seen[path] = true
		if info.Size() > s.maxFileBytes {
			if why := fmt.Sprintf("%d bytes", info.Size()); s.skipped[path] != why {
				s.skipped[path] = why
				s.log.Error("manifest file too large; keeping its objects as last read", "file", s.rel(path),
					"size", info.Size(), "max", s.maxFileBytes)
			}
			return nil
		}
		delete(s.skipped, path)
		st := fileStat{size: info.Size(), modTime: info.ModTime()}
		if f := s.files[path]; f != nil && f.stat == st && !touched[path] {
			return nil
		}
		s.load(path, st)
		return nil
	})
	if err != nil {
		s.log.Error("cannot walk manifests directory", "dir", s.dir, "err", err)
		return // keep everything as it was
	}
	if !s.present(w) {
		return // gone during the walk: what was not seen is not deleted
	}
	for path := range s.files {
		if !seen[path] {
			delete(s.files, path)
			s.log.Info("manifest file removed", "file", s.rel(path))
		}
	}
	s.deliver(sink, initial)
}

// regularFile returns the file info of a path worth reading: a regular file, or a symlink to one
// inside the directory. why says why any other is passed over (a FIFO would block the read, a
// link out of the directory would show other files).
func (s *Source) regularFile(path string, d fs.DirEntry) (fs.FileInfo, string) {
	if d.Type()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, "a broken or looping symlink: " + err.Error()
		}
		if rel, err := filepath.Rel(s.realRoot, target); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, "a symlink out of the manifests directory"
		}
		path = target
	}
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, err.Error()
	case !info.Mode().IsRegular():
		return nil, "not a regular file (" + info.Mode().Type().String() + ")"
	}
	return info, ""
}

func (s *Source) load(path string, st fileStat) {
	data, err := readAtMost(path, s.maxFileBytes)
	if err != nil {
		s.log.Warn("cannot read manifest file", "file", s.rel(path), "err", err)
		return
	}
	f := s.files[path]
	if f == nil {
		f = &file{}
		s.files[path] = f
	}
	f.stat = st
	objs, err := Decode(data)
	var invalid InvalidObjects
	f.invalid = len(invalid)
	if errors.As(err, &invalid) {
		f.invalid = len(invalid)
		for _, e := range invalid { // the file's valid objects are applied; these are kept out
			s.log.Error("manifest object invalid; left out of the mesh", "file", fmt.Sprintf("%s:%d", s.rel(path), e.Line), "err", e.Msg)
		}
		err = nil
	}
	if err != nil {
		f.failed = true
		kept := "no objects"
		if n := len(f.objects); n > 0 {
			kept = fmt.Sprintf("its %d objects as last read", n)
		}
		s.log.Error("manifest does not parse; keeping "+kept, "file", s.rel(path)+location(err), "err", err)
		return
	}
	if f.failed {
		s.log.Info("manifest parses again", "file", s.rel(path))
	}
	f.failed = false
	f.objects = f.objects[:0:0]
	for _, o := range objs {
		canonical, err := json.Marshal(o.Object)
		if err != nil { // decoded values are JSON-safe; this is a bug, not bad input
			s.log.Error("manifest object does not encode", "file", fmt.Sprintf("%s:%d", s.rel(path), o.Line), "err", err)
			continue
		}
		f.objects = append(f.objects, definition{obj: engine.Parse(o.Unstructured), digest: sha256.Sum256(canonical), path: path, line: o.Line})
	}
}

func location(err error) string {
	var se *SyntaxError
	if errors.As(err, &se) && se.Line > 0 {
		return fmt.Sprintf(":%d", se.Line)
	}
	return ""
}

// deliver merges the files (first definition in path order wins) and sends the sink the
// difference.
func (s *Source) deliver(sink source.Sink, initial bool) {
	s.countProblems()
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	next := map[engine.ObjectRef]*definition{}
	for _, p := range paths {
		for i := range s.files[p].objects {
			d := &s.files[p].objects[i]
			ref := d.obj.Ref()
			if first, dup := next[ref]; dup {
				s.log.Warn("object defined twice; using the first", "object", ref.String(),
					"used", fmt.Sprintf("%s:%d", s.rel(first.path), first.line),
					"ignored", fmt.Sprintf("%s:%d", s.rel(d.path), d.line))
				continue
			}
			next[ref] = d
		}
	}
	// Deletes first, in a stable order, so a rename (delete + add) reads naturally in logs.
	var gone []engine.ObjectRef
	for ref := range s.current {
		if _, ok := next[ref]; !ok {
			gone = append(gone, ref)
		}
	}
	slices.SortFunc(gone, func(a, b engine.ObjectRef) int { return strings.Compare(a.String(), b.String()) })
	refs := make([]engine.ObjectRef, 0, len(next))
	for ref := range next {
		refs = append(refs, ref)
	}
	// CRDs first, so kinds are known before their objects arrive.
	slices.SortFunc(refs, func(a, b engine.ObjectRef) int {
		ac, bc := a.Kind == engine.KindCRDObject, b.Kind == engine.KindCRDObject
		if ac != bc {
			if ac {
				return -1
			}
			return 1
		}
		return strings.Compare(a.String(), b.String())
	})
	if initial {
		list := make([]*engine.Parsed, len(refs))
		for i, ref := range refs {
			list[i] = next[ref].obj
		}
		s.current = next
		sink.Apply(engine.ObjectBatch{Upserts: list, Replace: true})
		return
	}
	var upserts []*engine.Parsed
	for _, ref := range refs {
		if d, old := next[ref], s.current[ref]; old == nil || old.digest != d.digest {
			upserts = append(upserts, d.obj)
		}
	}
	s.current = next
	if len(gone)+len(upserts) > 0 { // one batch: only the net entity changes
		sink.Apply(engine.ObjectBatch{Upserts: upserts, Deletes: gone})
	}
}

// present checks that the directory is there. When it is not, it says so once (log, metric,
// Stale) and watches the folder above for its return; when it is back, it watches it again.
func (s *Source) present(w *fsnotify.Watcher) bool {
	info, err := os.Stat(s.dir)
	if err == nil && !info.IsDir() {
		err = fmt.Errorf("%s: not a directory", s.dir)
	}
	if err != nil {
		if s.missing.Load() == nil {
			trouble := fmt.Errorf("manifests directory unreadable (%w); serving the mesh as last read", err)
			s.missing.Store(&trouble)
			s.setReadable(0)
			s.log.Error("manifests directory is gone; keeping the mesh as last read until it returns", "dir", s.dir, "err", err)
			if parent := filepath.Dir(filepath.Clean(s.dir)); s.parent == "" && w.Add(parent) == nil {
				s.parent = parent
			}
		}
		return false
	}
	if s.missing.Load() != nil {
		s.missing.Store(nil)
		s.log.Info("manifests directory is back; reading it again", "dir", s.dir)
		if root, err := filepath.EvalSymlinks(s.dir); err == nil {
			s.realRoot = root
		}
		if s.parent != "" {
			_ = w.Remove(s.parent)
			s.parent = ""
		}
		clear(s.skipped)
		for _, f := range s.files {
			f.stat = fileStat{} // read everything again
		}
	}
	s.setReadable(1)
	return true
}

func (s *Source) setReadable(v float64) {
	if s.readable != nil {
		s.readable.Set(v)
	}
}

// rel names a file under the directory as the user named the directory.
func (s *Source) rel(path string) string {
	if r, err := filepath.Rel(s.dir, path); err == nil {
		return filepath.Join(s.dir, r) // as the user named the directory: a path their shell opens
	}
	return path
}

// ignored skips hidden files and folders and editor backups.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.HasPrefix(name, "#")
}

func isManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readAtMost reads a file that may not grow past max bytes since it was looked at; a FIFO
// swapped in meanwhile is refused rather than read.
func readAtMost(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("larger than %d bytes", max)
	}
	return data, err
}

// countProblems sets broadcaster_manifests_problems from the files as last read.
func (s *Source) countProblems() {
	if s.problems == nil {
		return
	}
	unparsable, invalid := 0, 0
	for _, f := range s.files {
		if f.failed {
			unparsable++
		}
		invalid += f.invalid
	}
	s.problems.WithLabelValues("unparsable_files").Set(float64(unparsable))
	s.problems.WithLabelValues("invalid_objects").Set(float64(invalid))
}
