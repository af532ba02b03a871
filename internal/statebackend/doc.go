// Package statebackend is the implementation of package state: the Backend
// that keeps one operator subtask's keyed state in Pebble behind a cache of
// decoded entries and snapshots it at barriers, the Scope whose current key
// the runtime sets, the timers of runtime.TimerService, and the typed
// handles that package state defines its own over.
//
// Package state's documentation describes the design (layout, cache,
// checkpoints, TTL); this package is what the runtime and the engine call:
// Open, Config, Backend (Freeze, Drain, Results, Applied), NewScope,
// Scope.SetKey and Scope.Prefetch, NewTimers. Users never import it: state
// defines Scope, Value, Map, List and Namespaced as types with the same
// underlying types as this package's, so converting a pointer costs
// nothing and each of their methods is a direct call of the one here.
package statebackend
