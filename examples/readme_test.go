package examples

// The README test: every README.md of the repository is read as a user
// reads it, and what it shows must work.
//
// Go blocks (```go). A block that starts with "package main" is a program
// and runs as written. Any other block is the body of a function
//
//	func run(ctx context.Context) error { <block>; return nil }
//
// that main calls with a context bounded by blockTimeout; a non-nil error
// fails the test. Its imports are added from knownImports for every package
// name the block uses. A block that ends in "// Output:" comment lines
// must print exactly those lines. Each block runs twice: as written, with
// paths under /tmp/ moved to a temp directory, and with every address pair
// "unix", "/tmp/NAME" replaced by "tcp", "127.0.0.1:PORT", which checks the
// README's word that moving to TCP changes only the address. The blocks
// are built in a throwaway module that requires what this module requires,
// with the repository replacing github.com/shmconn/shmconn.
//
// Shell blocks (```sh) do not run. Their commands must exist: a "./path"
// command is an executable file of the repository, the package paths of go
// run, build, install and test are directories, every -flag given to a go
// run program is a string in that program's source, and every name in a go
// test -run pattern is a test function of those packages. Paths are from the
// repository root, in every README.
//
// Links: a relative link names a file of the repository, and its #anchor a
// heading of that file.

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// blockTimeout bounds one run of one block.
const blockTimeout = time.Minute

// knownImports maps the package names README blocks may use to their
// import paths.
var knownImports = map[string]string{
	"bufio":    "bufio",
	"context":  "context",
	"errors":   "errors",
	"fmt":      "fmt",
	"io":       "io",
	"log":      "log",
	"net":      "net",
	"http":     "net/http",
	"os":       "os",
	"strings":  "strings",
	"time":     "time",
	"conn":     "github.com/shmconn/shmconn/conn",
	"ring":     "github.com/shmconn/shmconn/ring",
	"redis":    "github.com/redis/go-redis/v9",
	"redcon":   "github.com/tidwall/redcon",
	"grpc":     "google.golang.org/grpc",
	"insecure": "google.golang.org/grpc/credentials/insecure",
	"health":   "google.golang.org/grpc/health",
	"healthpb": "google.golang.org/grpc/health/grpc_health_v1",
}

// block is one fenced code block of a README.
type block struct {
	file string // relative to the repository root
	line int    // of the opening fence
	lang string
	text string
}

func (b block) name() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// repoRoot is the repository's root: this package is examples/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// readmeBlocks returns the fenced code blocks of every README.md under root.
func readmeBlocks(t *testing.T, root string) []block {
	t.Helper()
	var blocks []block
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() != "README.md" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		blocks = append(blocks, fencedBlocks(t, rel, string(data))...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// fencedBlocks splits markdown into its ``` blocks. An indented code block
// is an error: its language is unknown, so nothing could check it.
func fencedBlocks(t *testing.T, file, md string) []block {
	t.Helper()
	var blocks []block
	var cur *block
	var body strings.Builder
	prevBlank := true
	for i, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{file: file, line: i + 1, lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
			body.Reset()
		case cur != nil && strings.HasPrefix(line, "```"):
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case prevBlank && strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != "":
			t.Errorf("%s:%d: an indented code block; fence it with its language (```sh, ```go)", file, i+1)
		}
		prevBlank = strings.TrimSpace(line) == ""
	}
	if cur != nil {
		t.Errorf("%s:%d: code block never closed", file, cur.line)
	}
	return blocks
}

func TestREADMEGoBlocks(t *testing.T) {
	root := repoRoot(t)
	var goBlocks []block
	for _, b := range readmeBlocks(t, root) {
		if b.lang == "go" {
			goBlocks = append(goBlocks, b)
		}
	}
	if len(goBlocks) == 0 {
		t.Fatal("no ```go block in any README.md")
	}
	mod := t.TempDir()
	writeBlockModule(t, root, mod)
	var programs []program
	for i, b := range goBlocks {
		p := program{block: b, dir: fmt.Sprintf("b%02d", i), want: blockOutput(b.text)}
		src, err := blockProgram(b.text)
		if err != nil {
			t.Errorf("%s: %v", b.name(), err)
			continue
		}
		if err := os.MkdirAll(filepath.Join(mod, p.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, p.dir, "main.go"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		programs = append(programs, p)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./...")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the README's go blocks (%s):\n%s\n%v", mod, blockLines(out, programs), err)
	}
	for _, p := range programs {
		for _, variant := range []string{"as-written", "tcp"} {
			if variant == "tcp" && !unixAddr.MatchString(p.text) {
				continue
			}
			t.Run(p.name()+"/"+variant, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), blockTimeout+10*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, filepath.Join(bin, p.dir), variant)
				cmd.Dir = t.TempDir()
				cmd.Env = append(os.Environ(), "README_TMP="+cmd.Dir)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", p.name(), err, out)
				}
				if p.want != "" && strings.TrimSpace(string(out)) != p.want {
					t.Errorf("%s printed\n%s\nwant (its Output comment)\n%s", p.name(), out, p.want)
				}
			})
		}
	}
}

// program is a go block built into a directory of the block module.
type program struct {
	block
	dir  string // inside the module
	want string // expected output; "" when the block states none
}

// blockLines prefixes the build's output with which README block each
// bNN directory holds.
func blockLines(out []byte, programs []program) string {
	var b strings.Builder
	for _, p := range programs {
		fmt.Fprintf(&b, "%s is %s\n", p.dir, p.name())
	}
	b.Write(out)
	return b.String()
}

// writeBlockModule makes dir a module that requires what the examples
// module requires, with the repository at root replacing shmconn.
func writeBlockModule(t *testing.T, root, dir string) {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(root, "examples", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile(filepath.Join(root, "examples", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(gomod), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "module "):
			lines[i] = "module readmeblocks"
		case strings.HasPrefix(l, "replace github.com/shmconn/shmconn "):
			lines[i] = "replace github.com/shmconn/shmconn => " + root
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644); err != nil {
		t.Fatal(err)
	}
}

// unixAddr is an address pair the tcp variant replaces.
var unixAddr = regexp.MustCompile(`"unix", "/tmp/([^"]+)"`)

// blockProgram returns the program a block runs as: it takes one argument,
// "as-written" or "tcp", and runs the block's variant.
func blockProgram(text string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(text), "package main") {
		// A program runs as written; only /tmp/ moves.
		return []byte(strings.ReplaceAll(text, `"/tmp/`, `os.Getenv("README_TMP") + "/`)), nil
	}
	asWritten := strings.ReplaceAll(text, `"/tmp/`, `os.Getenv("README_TMP") + "/`)
	tcp, err := tcpVariant(text)
	if err != nil {
		return nil, err
	}
	src := "package main\n\n" +
		"func main() {\n" +
		"\tctx, cancel := context.WithTimeout(context.Background(), time.Duration(" + fmt.Sprint(int64(blockTimeout)) + "))\n" +
		"\tdefer cancel()\n" +
		"\trun := map[string]func(context.Context) error{\"as-written\": runAsWritten, \"tcp\": runTCP}[os.Args[1]]\n" +
		"\tif err := run(ctx); err != nil {\n\t\tfmt.Fprintln(os.Stderr, \"error:\", err)\n\t\tos.Exit(1)\n\t}\n}\n\n" +
		"func runAsWritten(ctx context.Context) error {\n" + asWritten + "\treturn nil\n}\n\n" +
		"func runTCP(ctx context.Context) error {\n" + tcp + "\treturn nil\n}\n"
	return withImports(src)
}

// tcpVariant replaces each "unix", "/tmp/NAME" pair of text by "tcp" and a
// free loopback port, one per NAME.
func tcpVariant(text string) (string, error) {
	ports := map[string]string{}
	var err error
	out := unixAddr.ReplaceAllStringFunc(text, func(m string) string {
		name := unixAddr.FindStringSubmatch(m)[1]
		if _, ok := ports[name]; !ok {
			ln, lerr := net.Listen("tcp", "127.0.0.1:0")
			if lerr != nil {
				err = lerr
				return m
			}
			ports[name] = ln.Addr().String()
			ln.Close()
		}
		return `"tcp", "` + ports[name] + `"`
	})
	return out, err
}

// withImports parses src, which has no imports, and adds one for every
// package name it uses that it does not declare.
func withImports(src string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("not Go: %v", err)
	}
	declared := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						declared[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				declared[id.Name] = true
			}
		case *ast.Field:
			for _, id := range n.Names {
				declared[id.Name] = true
			}
		}
		return true
	})
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && !declared[id.Name] {
				used[id.Name] = true
			}
		}
		return true
	})
	var imports []string
	for name := range used {
		path, ok := knownImports[name]
		if !ok {
			return nil, fmt.Errorf("uses %s, which is not in knownImports", name)
		}
		if filepath.Base(path) != name {
			imports = append(imports, name+" "+strconv.Quote(path))
		} else {
			imports = append(imports, strconv.Quote(path))
		}
	}
	slices.Sort(imports)
	return []byte(strings.Replace(src, "package main\n", "package main\n\nimport (\n\t"+strings.Join(imports, "\n\t")+"\n)\n", 1)), nil
}

// blockOutput returns the lines of a block's closing "// Output:" comment,
// or "".
func blockOutput(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "//") {
			return ""
		}
		if rest, ok := strings.CutPrefix(l, "// Output:"); ok {
			var want []string
			if rest = strings.TrimSpace(rest); rest != "" {
				want = append(want, rest)
			}
			for _, w := range lines[i+1:] {
				want = append(want, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(w), "//")))
			}
			return strings.Join(want, "\n")
		}
	}
	return ""
}

func TestREADMECommands(t *testing.T) {
	root := repoRoot(t)
	checked := 0
	for _, b := range readmeBlocks(t, root) {
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range shellCommands(b.text) {
			if err := checkCommand(root, cmd); err != nil {
				t.Errorf("%s: %q: %v", b.name(), strings.Join(cmd, " "), err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no command in any ```sh block")
	}
}

// shellCommands returns the commands of a shell block as words: comments
// dropped, continued lines joined, optional [parts] and <placeholders>
// removed.
func shellCommands(text string) [][]string {
	var cmds [][]string
	var cur string
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ') {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur += cont + " "
			continue
		}
		cur += line
		cur = optionalPart.ReplaceAllString(cur, "")
		if f := strings.Fields(cur); len(f) > 0 {
			cmds = append(cmds, f)
		}
		cur = ""
	}
	return cmds
}

var optionalPart = regexp.MustCompile(`\[[^\]]*\]|<[^>]*>`)

// checkCommand checks that what cmd names exists in the repository.
func checkCommand(root string, cmd []string) error {
	if strings.HasPrefix(cmd[0], "./") {
		fi, err := os.Stat(filepath.Join(root, cmd[0]))
		if err != nil {
			return err
		}
		if fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", cmd[0])
		}
		return nil
	}
	if cmd[0] != "go" || len(cmd) < 2 {
		return nil // a tool of the system: not ours to check
	}
	var pkgs, progArgs []string
	runPattern := ""
	args := cmd[2:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "./"):
			pkgs = append(pkgs, a)
			if cmd[1] == "run" {
				progArgs = args[i+1:]
				i = len(args)
			}
		case a == "-run" && i+1 < len(args):
			runPattern = args[i+1]
			i++
		case a == "-o" || a == "-tags" || a == "-buildmode" || a == "-bench" || a == "-count" || a == "-timeout":
			i++ // their value is not a package
		}
	}
	if (cmd[1] == "run" || cmd[1] == "build" || cmd[1] == "install" || cmd[1] == "test") && len(pkgs) == 0 {
		return fmt.Errorf("names no ./package")
	}
	for _, p := range pkgs {
		if fi, err := os.Stat(filepath.Join(root, strings.TrimSuffix(p, "/..."))); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory of the repository", p)
		}
	}
	if cmd[1] == "run" {
		return checkFlags(filepath.Join(root, pkgs[0]), progArgs)
	}
	if runPattern != "" {
		return checkTestNames(root, pkgs, runPattern)
	}
	return nil
}

// checkFlags checks that every -flag in args is a string literal of the
// program in dir ("name", "-name" or "--name").
func checkFlags(dir string, args []string) error {
	strs, err := packageStrings(dir)
	if err != nil {
		return err
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strs[name] && !strs["-"+name] && !strs["--"+name] {
			return fmt.Errorf("%s defines no flag %s", dir, a)
		}
	}
	return nil
}

// checkTestNames checks that each name of a -run pattern's alternatives
// (its top level, split at |) is a function in the test files of pkgs.
func checkTestNames(root string, pkgs []string, pattern string) error {
	funcs := map[string]bool{}
	for _, p := range pkgs {
		dir := filepath.Join(root, strings.TrimSuffix(p, "/..."))
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, d := range f.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok {
					funcs[fn.Name.Name] = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, alt := range strings.Split(strings.Trim(pattern, "'\"^$"), "|") {
		name := strings.Trim(alt, "^$()")
		if regexp.QuoteMeta(name) != name {
			continue // a real regexp: nothing simple to check
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(funcs)), func(f string) bool { return strings.HasPrefix(f, name) }) {
			return fmt.Errorf("no test function matches %s", name)
		}
	}
	return nil
}

// packageStrings returns the string literals of the non-test Go files in
// dir.
func packageStrings(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no Go files", dir)
	}
	strs := map[string]bool{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					strs[s] = true
				}
			}
			return true
		})
	}
	return strs, nil
}

// TestREADMELinks checks that every relative link of a README.md names a
// file or directory of the repository, and that every #anchor names a
// heading of the file it points into (as GitHub makes anchors of headings).
func TestREADMELinks(t *testing.T) {
	root := repoRoot(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() != "README.md" {
			return nil
		}
		md, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range link.FindAllStringSubmatch(string(md), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			dest := path
			if file != "" {
				dest = filepath.Join(filepath.Dir(path), file)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", rel, target, err)
					continue
				}
			}
			if anchor != "" && !slices.Contains(headingAnchors(t, dest), anchor) {
				t.Errorf("%s: link %s: no such heading", rel, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// markdown file: lower case, punctuation other than - and _ dropped,
// spaces made -.
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var anchors []string
	inCode := false
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors = append(anchors, b.String())
	}
	return anchors
}
