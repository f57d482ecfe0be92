// Package manifests is the embedded default source: a directory of YAML or JSON manifests
// (multi-document files, nested folders, kind: List), watched with fsnotify and debounced.
//
// A file that fails to parse is reported with its path and line and keeps contributing the
// objects it last parsed to: a typo in an editor never deletes anything from the mesh. An
// object defined in several files is taken from the first file in path order.
package manifests
