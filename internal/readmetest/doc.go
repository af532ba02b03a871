// Package readmetest proves that the Go snippets of the README compile
// against the current API: its test extracts every ```go block of
// README.md, wraps it into a file of package main and type-checks it
// against the module's packages. Run it after any change of the public API:
//
//	go test ./internal/readmetest
//
// A block is compiled as one of three shapes, chosen by what it parses as:
// a whole file (it starts with "package"), top-level declarations (wrapped
// in package main), or statements (wrapped in a function body). Imports
// are added for the package names a block uses (weir's public packages by
// their names, runtime being weir's, and the standard library's usual
// ones), so snippets show none.
//
// A deliberately partial snippet, one that uses names it does not declare
// (a stream built earlier, the user's record type), is preceded by an HTML
// comment, invisible on GitHub, that declares them:
//
//	<!-- snippet-context
//	type Order struct{ ID string }
//	var keyed operators.KeyedStream[string, Order]
//	-->
//	```go
//	… uses keyed and Order …
//	```
//
// Variables a snippet declares and never uses are allowed: a snippet shows
// how to get a value, not always what to do with it. Everything else the
// type checker reports fails the test, with the README line.
//
// A second test keeps the examples copyable: no example's program imports
// a package under internal/.
package readmetest
