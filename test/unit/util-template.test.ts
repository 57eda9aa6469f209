import { describe, expect, it } from "vitest";
import {
  alignColumns,
  displayWidth,
  formatTable,
  goSprintf,
  goStruct,
  NIL_MAP,
  NIL_SLICE,
  parseTemplate,
  StrataError,
  type TemplateOptions,
  tabwrite,
} from "../../src/util/index.js";

interface Case {
  tpl: string;
  data?: unknown;
  want: string;
  opts?: TemplateOptions;
}

interface ErrCase {
  tpl: string;
  data?: unknown;
  err: string;
  opts?: TemplateOptions;
}

function render(c: { tpl: string; data?: unknown; opts?: TemplateOptions }): string {
  return parseTemplate(c.tpl, c.opts).execute(c.data);
}

function failure(f: () => unknown): StrataError {
  try {
    f();
  } catch (e) {
    if (e instanceof StrataError) return e;
    throw e;
  }
  throw new Error("no error thrown");
}

/** A `docker image inspect`-shaped value. */
const image = {
  Id: "sha256:05455a08881e",
  RepoTags: ["alpine:3.19", "alpine:latest"],
  RepoDigests: [],
  Size: 7340032,
  Config: {
    Cmd: ["/bin/sh", "-c", "echo hi"],
    Entrypoint: NIL_SLICE,
    Env: ["PATH=/usr/bin", "A=b c"],
    Labels: { "org.opencontainers.image.version": "3.19", maintainer: "x <x@y>" },
    Volumes: NIL_MAP,
  },
  State: { Health: null },
};

describe("template constructs Docker formats use", () => {
  const cases: Case[] = [
    { tpl: "{{.Repository}}:{{.Tag}}", data: { Repository: "alpine", Tag: "3.19" }, want: "alpine:3.19" },
    {
      tpl: "{{json .Config}}",
      data: image,
      want: '{"Cmd":["/bin/sh","-c","echo hi"],"Entrypoint":null,"Env":["PATH=/usr/bin","A=b c"],"Labels":{"org.opencontainers.image.version":"3.19","maintainer":"x <x@y>"},"Volumes":null}',
    },
    { tpl: "{{.Config.Cmd}}", data: image, want: "[/bin/sh -c echo hi]" },
    {
      tpl: "{{.Config.Entrypoint}}|{{.Config.Volumes}}|{{.State.Health}}",
      data: image,
      want: "[]|map[]|<nil>",
    },
    { tpl: "{{range .RepoTags}}{{.}} {{end}}", data: image, want: "alpine:3.19 alpine:latest " },
    {
      tpl: "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
      data: image,
      want: "maintainer=x <x@y>;org.opencontainers.image.version=3.19;",
    },
    { tpl: "{{if .X}}a{{else}}b{{end}}", data: { X: true }, want: "a" },
    { tpl: "{{if .X}}a{{else}}b{{end}}", data: { X: "" }, want: "b" },
    { tpl: "{{with .X}}{{.}}{{end}}", data: { X: "in" }, want: "in" },
    { tpl: "{{with .X}}{{.}}{{else}}none{{end}}", data: {}, want: "none" },
    { tpl: "{{.Config.Cmd | json}}", data: image, want: '["/bin/sh","-c","echo hi"]' },
    { tpl: '{{join .RepoTags ", "}}', data: image, want: "alpine:3.19, alpine:latest" },
    { tpl: '{{index .Config.Labels "org.opencontainers.image.version"}}', data: image, want: "3.19" },
    { tpl: "{{len .RepoTags}} {{len .Config.Labels}} {{len .Id}}", data: image, want: "2 2 19" },
    { tpl: '{{printf "%s-%d" .A .B}}', data: { A: "x", B: 5 }, want: "x-5" },
    { tpl: "{{println .A}}", data: { A: "x" }, want: "x\n" },
    {
      tpl: "{{upper .A}} {{lower .A}} {{title .B}}",
      data: { A: "MiXed", B: "hello wORLD" },
      want: "MIXED mixed Hello WORLD",
    },
    { tpl: '{{split .A ","}}', data: { A: "a,b,c" }, want: "[a b c]" },
    { tpl: "{{truncate .A 5}}", data: { A: "abcdefgh" }, want: "abcde" },
    { tpl: "{{pad .A 1 2}}|", data: { A: "x" }, want: " x  |" },
    {
      tpl: '{{eq .A "x"}} {{ne .A "x"}} {{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}} {{not .A}} {{and 1 0}} {{or 0 "y"}}',
      data: { A: "x" },
      want: "true false true true false true false 0 y",
    },
    { tpl: "a  {{- .A -}}  b", data: { A: "x" }, want: "axb" },
    { tpl: "a\n\t {{- .A}}\n", data: { A: "x" }, want: "ax\n" },
    { tpl: "{{.A -}}\n\n  b", data: { A: "x" }, want: "xb" },
    { tpl: "{{/* a comment */}}x{{- /* trimmed */ -}}  y{{/* multi\nline */}}", data: {}, want: "xy" },
    { tpl: "{{-3}} a {{- 3}}", data: {}, want: "-3 a3" },
    {
      tpl: "{{\"s\"}} {{`raw\\n`}} {{1}} {{1.5}} {{true}} {{false}} {{0x10}} {{'a'}}",
      want: "s raw\\n 1 1.5 true false 16 97",
    },
    {
      tpl: "{{1.0}} {{1e3}} {{1e6}} {{-5}} {{+5}} {{.5}} {{0b101}} {{0o17}} {{017}} {{1_000}}",
      want: "1 1000 1e+06 -5 5 0.5 5 15 15 1000",
    },
    { tpl: '{{"\\x41\\u00e9\\101\\t\\""}}', want: 'AéA\t"' },
    { tpl: "{{$.A}}{{with .B}}{{$.A}}{{.}}{{end}}", data: { A: "r", B: "b" }, want: "rrb" },
    { tpl: "{{$}}", data: { a: 1 }, want: "map[a:1]" },
  ];
  it.each(cases)("$tpl", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("printing values as Go's fmt %v", () => {
  const cases: Case[] = [
    { tpl: "{{.}}", data: { b: [1, "x", null], a: { c: true } }, want: "map[a:map[c:true] b:[1 x <nil>]]" },
    { tpl: "{{.}}", data: { b: 1, B: 2, a: 3, é: 4, z: 5 }, want: "map[B:2 a:3 b:1 z:5 é:4]" },
    { tpl: "{{.}}", data: ["", "a"], want: "[ a]" },
    { tpl: "{{.}}", data: [], want: "[]" },
    { tpl: "{{.}}", data: {}, want: "map[]" },
    { tpl: "{{.}}", data: NIL_SLICE, want: "[]" },
    { tpl: "{{.}}", data: NIL_MAP, want: "map[]" },
    { tpl: "{{.}}", data: null, want: "<nil>" },
    { tpl: "{{.Missing}}", data: {}, want: "<no value>" },
    { tpl: "{{.A.B}}", data: {}, want: "<no value>" },
    { tpl: "{{.U}}", data: { U: undefined }, want: "<no value>" },
    { tpl: "{{.}}", data: true, want: "true" },
    { tpl: "{{.}}", data: 7340032, want: "7340032" },
    { tpl: "{{.}}", data: -3, want: "-3" },
    { tpl: "{{.}}", data: 0.5, want: "0.5" },
    { tpl: "{{.}}", data: -2.5, want: "-2.5" },
    { tpl: "{{.}}", data: 1234567.5, want: "1.2345675e+06" },
    { tpl: "{{.}}", data: 100000.5, want: "100000.5" },
    { tpl: "{{.}}", data: 0.000012, want: "1.2e-05" },
    { tpl: "{{.}}", data: Number.NaN, want: "NaN" },
    { tpl: "{{.}}", data: Number.POSITIVE_INFINITY, want: "+Inf" },
    { tpl: "{{.}}", data: "100%", want: "100%" },
    { tpl: "{{.}}", data: goStruct({ A: 1, B: "x" }, "main.T"), want: "{1 x}" },
    { tpl: "{{.}}", data: goStruct({ A: 1, B: ["y"] }, "*main.T"), want: "&{1 [y]}" },
    { tpl: "{{.S}}", data: { S: goStruct({ A: null }, "main.T") }, want: "{<nil>}" },
  ];
  it.each(cases)("$tpl over $data", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("json: Docker's encoding/json output", () => {
  const cases: Case[] = [
    {
      tpl: "{{json .}}",
      data: { b: 1, a: [1.5, "x", null, true], c: {}, u: undefined },
      want: '{"b":1,"a":[1.5,"x",null,true],"c":{}}',
    },
    { tpl: "{{json .}}", data: "<a&b>", want: '"<a&b>"' },
    { tpl: "{{json .}}", data: "<a&b>", opts: { jsonEscapeHTML: true }, want: '"\\u003ca\\u0026b\\u003e"' },
    {
      tpl: "{{json .}}",
      data: '\u0001\b\f\n\r\t"\\é\u2028\u2029',
      want: '"\\u0001\\b\\f\\n\\r\\t\\"\\\\é\\u2028\\u2029"',
    },
    { tpl: "{{json .}}", data: "\ud800x😀", want: '"\\ufffdx😀"' },
    {
      tpl: "{{json .A}} {{json .B}} {{json .Missing}}",
      data: { A: NIL_SLICE, B: NIL_MAP },
      want: "null null null",
    },
    {
      tpl: "{{json 1.0}} {{json 0.1}} {{json 1e21}} {{json 1e-7}} {{json 7340032}}",
      want: "1 0.1 1e+21 1e-7 7340032",
    },
    { tpl: "{{json .}}", data: { x: Number.NaN }, want: "" },
    { tpl: "{{json .}}", data: goStruct({ Z: 1, A: 2 }, "T"), want: '{"Z":1,"A":2}' },
    { tpl: "{{json .}}", data: { d: new Date(0) }, want: '{"d":"1970-01-01T00:00:00.000Z"}' },
  ];
  it.each(cases)("$tpl over $data", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("printf, print, println as Go's fmt", () => {
  const cases: Case[] = [
    {
      tpl: '{{printf "%5.2f|%-5s|%05d|%x|%X|%o|%b|%q|%v|%T" 3.14159 "ab" 42 255 255 8 5 "hi" .L .L}}',
      data: { L: ["a", "b"] },
      want: ' 3.14|ab   |00042|ff|FF|10|101|"hi"|[a b]|[]string',
    },
    {
      tpl: '{{printf "%e|%E|%g|%G|%.3g|%#g|%6.3v" 123456.789 1e-7 1e21 1e-7 0.6666666 1.0 3.14159}}',
      want: "1.234568e+05|1.000000E-07|1e+21|1E-07|0.667|1.00000|  3.14",
    },
    {
      tpl: '{{printf "%+d|% d|%#x|%#o|%c|%U|%#U|%q" 5 5 255 8 65 128512 65 65}}',
      want: "+5| 5|0xff|010|A|U+1F600|U+0041 'A'|'A'",
    },
    {
      tpl: '{{printf "%08.3f|%-8d|%+.2e|%x" -3.5 42 12345.678 "hi"}}',
      want: "-003.500|42      |+1.23e+04|6869",
    },
    { tpl: '{{printf "%.0f %.0f %.1f %.2f" 0.5 1.5 0.25 2.675}}', want: "0 2 0.2 2.67" },
    { tpl: '{{printf "%x|% X|%#x" "hi" "hi" "hi"}}', want: "6869|68 69|0x6869" },
    { tpl: '{{printf "%6.2s|%-4q|" "abcdef" "é"}}', want: '    ab|"é" |' },
    { tpl: '{{printf "%[2]s %[1]s" "a" "b"}}', want: "b a" },
    { tpl: '{{printf "%*d|%-*d|%.*f" 5 1 3 2 2 3.14159}}', want: "    1|2  |3.14" },
    { tpl: '{{printf "%d %d" 1}}', want: "1 %!d(MISSING)" },
    { tpl: '{{printf "%d" 1 "x"}}', want: "1%!(EXTRA string=x)" },
    {
      tpl: '{{printf "%d" "s"}} {{printf "%d" 1.5}} {{printf "%.2f" 3}}',
      want: "%!d(string=s) %!d(float64=1.5) %!f(int=03)",
    },
    {
      tpl: '{{printf "%[3]d" 1}} {{printf "%!"}} {{printf "%"}}',
      want: "%!d(BADINDEX) %!!(MISSING) %!(NOVERB)",
    },
    { tpl: '{{printf "%v %d" .N .N}}', data: { N: null }, want: "<nil> %!d(<nil>)" },
    { tpl: '{{printf "%s" .L}}', data: { L: [1, "a"] }, want: "[%!s(int=1) a]" },
    { tpl: '{{printf "%v" .M}}', data: { M: { b: 2, a: 1 } }, want: "map[a:1 b:2]" },
    {
      tpl: '{{printf "%+v|%#v" . .}}',
      data: goStruct({ A: 1, B: "x" }, "main.T"),
      want: '{A:1 B:x}|main.T{A:1, B:"x"}',
    },
    {
      tpl: '{{printf "%#v" .}}',
      data: { a: ["x", 1, null], b: "s" },
      want: 'map[string]interface {}{"a":[]interface {}{"x", 1, interface {}(nil)}, "b":"s"}',
    },
    {
      tpl: '{{printf "%#v|%#v" .A .B}}',
      data: { A: { a: "x" }, B: NIL_SLICE },
      want: 'map[string]string{"a":"x"}|[]string(nil)',
    },
    { tpl: '{{printf "%t %v %5t|" true false true}}', want: "true false  true|" },
    { tpl: '{{.A | printf "%s!"}} {{"x" | printf "%s-%s" "y"}}', data: { A: "hi" }, want: "hi! y-x" },
    {
      tpl: '{{print 1 2 "a" 3 .N}}|{{println 1 "a"}}|{{print}}',
      data: { N: null },
      want: "1 2a3 <nil>|1 a\n|",
    },
  ];
  it.each(cases)("$tpl", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });

  it("goSprintf formats JS values the same way", () => {
    const got = goSprintf("%s|%5.1f|%v|%d|%v", "a", 2.25, [1, "b"], 3, undefined);
    expect(got).toBe("a|  2.2|[1 b]|3|<nil>");
  });
});

describe("Docker's functions and Go's builtins", () => {
  const cases: Case[] = [
    { tpl: '{{split "a,b,c" ","}} {{split "aé" ""}} {{len (split "" ",")}}', want: "[a b c] [a é] 1" },
    {
      tpl: '{{join .L "-"}}|{{join .Missing ","}}|{{join .Nil ","}}|',
      data: { L: ["a", "b"], Nil: NIL_SLICE },
      want: "a-b|||",
    },
    { tpl: "{{title .}}", data: "hello wORLD foo_bar x-y ǆx", want: "Hello WORLD Foo_bar X-Y ǅx" },
    { tpl: "{{upper .}}|{{lower .}}", data: "straße ÀÉ İ", want: "STRAßE ÀÉ İ|straße àé i" },
    { tpl: '{{pad "x" 1 2}}|{{pad "" 3 3}}|{{pad "x" 0 0}}|', want: " x  ||x|" },
    {
      tpl: '{{truncate "abcdefgh" 5}}|{{truncate "abc" 5}}|{{truncate "abc" 3}}|{{truncate "abc" 0}}|',
      want: "abcde|abc|abc||",
    },
    {
      tpl: '{{len .L}} {{len .M}} {{len "héllo"}} {{len .Nil}}',
      data: { L: [1, 2], M: { a: 1 }, Nil: NIL_MAP },
      want: "2 1 6 0",
    },
    {
      tpl: '{{index .L 1}} {{index .M "a.b"}} {{index .N "a" 0}} {{index "abc" 1}} {{index .L}}',
      data: { L: ["x", "y"], M: { "a.b": "v" }, N: { a: ["deep"] } },
      want: "y v deep 98 [x y]",
    },
    {
      tpl: '{{index .Labels "nope"}}|{{index .Any "nope"}}|{{index .Nil "k"}}|',
      data: { Labels: { a: "b" }, Any: { n: 1 }, Nil: NIL_MAP },
      want: "|<no value>||",
    },
    {
      tpl: '{{slice "hello" 1 3}} {{slice .L 1}} {{slice .L 0 1}} {{slice .L}}',
      data: { L: [1, 2, 3] },
      want: "el [2 3] [1] [1 2 3]",
    },
    {
      tpl: '{{not 0}} {{and 1 "x"}} {{or "" 0}} [{{and "" .Missing}}] {{or .Missing "d"}} {{and 1 .Missing}}',
      want: "true x 0 [] d <no value>",
    },
    { tpl: `{{html "<a href='x'>&\\""}}`, want: "&lt;a href=&#39;x&#39;&gt;&amp;&#34;" },
    {
      tpl: '{{js "a\'b\\"c<d>=&\\\\"}} {{js "é\\u200b"}}',
      want: "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\u0026\\\\ é\\u200B",
    },
    {
      tpl: '{{urlquery "a b&c=d/é~!"}} {{html .X}} {{urlquery 1 2}}',
      data: {},
      want: "a+b%26c%3Dd%2F%C3%A9~%21 &lt;no value&gt; 1+2",
    },
  ];
  it.each(cases)("$tpl", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("comparisons", () => {
  const cases: Case[] = [
    {
      tpl: '{{eq "a" "a"}} {{eq 1 2}} {{eq "a" "b" "a"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}',
      want: "true false true true true true true false",
    },
    {
      tpl: "{{eq .N nil}} {{eq .Missing nil}} {{eq .L nil}} {{eq .X nil}}",
      data: { N: null, L: [1], X: NIL_SLICE },
      want: "true true false true",
    },
    { tpl: '{{eq .Missing "x"}} {{eq .N "x"}}', data: { N: null }, want: "false false" },
    { tpl: '{{lt "Z" "a"}} {{lt "é" "z"}} {{lt "" "a"}}', want: "true false true" },
    { tpl: "{{eq .F 1.5}} {{lt .I 3}} {{eq 1.0 1.0}}", data: { F: 1.5, I: 2 }, want: "true true true" },
  ];
  it.each(cases)("$tpl", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("control flow and variables", () => {
  const cases: Case[] = [
    { tpl: "{{if .A}}a{{else if .B}}b{{else}}c{{end}}", data: { B: 1 }, want: "b" },
    { tpl: "{{with .A}}a{{else with .B}}{{.}}{{else}}c{{end}}", data: { B: "bb" }, want: "bb" },
    { tpl: "{{range $i, $e := .}}{{$i}}:{{$e}} {{end}}", data: ["a", "b"], want: "0:a 1:b " },
    { tpl: "{{range $k, $v := .}}{{$k}}={{$v}} {{end}}", data: { b: 2, a: 1 }, want: "a=1 b=2 " },
    { tpl: "{{range $e := .}}{{$e}}{{end}}", data: ["x", "y"], want: "xy" },
    { tpl: "{{range .}}x{{else}}empty{{end}}", data: [], want: "empty" },
    { tpl: "{{range .}}x{{else}}empty{{end}}", data: NIL_SLICE, want: "empty" },
    { tpl: "{{range .}}x{{else}}empty{{end}}", data: null, want: "empty" },
    { tpl: "{{range .M}}x{{else}}empty{{end}}", data: {}, want: "empty" },
    {
      tpl: "{{range 3}}{{.}}{{end}}|{{range $e := 2}}{{$e}}{{end}}|{{range 0}}x{{else}}none{{end}}",
      want: "012|01|none",
    },
    {
      tpl: "{{range .}}{{if eq . 3}}{{break}}{{end}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}",
      data: [0, 1, 2, 3, 4],
      want: "02",
    },
    { tpl: "{{range .L}}{{$.P}}{{.}}{{end}}", data: { P: "-", L: ["a", "b"] }, want: "-a-b" },
    { tpl: '{{$x := .A}}{{$x}}{{$x = "b"}}{{$x}}', data: { A: "a" }, want: "ab" },
    { tpl: "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", want: "2" },
    { tpl: "{{$n := 0}}{{range .}}{{$n = .}}{{end}}{{$n}}", data: [4, 5], want: "5" },
    { tpl: "{{$x := 1}}{{range $x := .}}{{$x}}{{end}}{{$x}}", data: [5], want: "51" },
    { tpl: "{{if $v := .A}}{{$v}}{{end}}", data: { A: "set" }, want: "set" },
    {
      tpl: '{{define "t"}}[{{.}}]{{end}}{{template "t" .A}}{{template "t"}}',
      data: { A: 5 },
      want: "[5][<no value>]",
    },
    { tpl: '{{block "b" .}}B{{.}}{{end}}', data: 7, want: "B7" },
    {
      tpl: "{{(index .L 0) | upper}} {{(index .O 0).Name}}",
      data: { L: ["a"], O: [{ Name: "n" }] },
      want: "A n",
    },
  ];
  it.each(cases)("$tpl", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("options and Go-typed values", () => {
  const cases: Case[] = [
    { tpl: "{{.A.B}}|", data: { A: { x: "s" } }, opts: { missingKey: "zero" }, want: "|" },
    { tpl: "{{.A.B}}|", data: { A: { x: 1 } }, opts: { missingKey: "zero" }, want: "<no value>|" },
    { tpl: "{{.A.B}}", data: { A: {} }, opts: { missingKey: "default" }, want: "<no value>" },
    { tpl: "{{.X}}", data: goStruct({ X: "field" }, "main.T"), want: "field" },
    { tpl: "{{if .}}y{{else}}n{{end}}", data: goStruct({}, "main.T"), want: "y" },
    {
      tpl: "{{.Size}}",
      data: goStruct(
        new (class {
          get Size() {
            return "7MB";
          }
        })(),
        "*formatter.imageContext",
      ),
      want: "7MB",
    },
  ];
  it.each(cases)("$tpl over $data with $opts", (c) => {
    const got = render(c);
    expect(got).toBe(c.want);
  });
});

describe("parse errors are Go's", () => {
  const cases: ErrCase[] = [
    { tpl: "{{foo}}", err: 'template: :1: function "foo" not defined' },
    { tpl: "{{.A | nope}}", err: 'template: :1: function "nope" not defined' },
    { tpl: "{{.A", err: "template: :1: unclosed action" },
    { tpl: "{{.A\n", err: "template: :2: unclosed action started at :1" },
    { tpl: "{{if .A}}x", err: "template: :1: unexpected EOF" },
    { tpl: "{{end}}", err: "template: :1: unexpected {{end}}" },
    { tpl: "{{else}}", err: "template: :1: unexpected {{else}}" },
    { tpl: "{{if .A}}{{else}}{{else}}{{end}}", err: "template: :1: expected end; found {{else}}" },
    { tpl: "{{$x}}", err: 'template: :1: undefined variable "$x"' },
    { tpl: "{{range .L}}{{$x := .}}{{end}}{{$x}}", err: 'template: :1: undefined variable "$x"' },
    { tpl: "{{}}", err: "template: :1: missing value for command" },
    { tpl: "a\n{{if}}{{end}}", err: "template: :2: missing value for if" },
    { tpl: '{{.A | "x"}}', err: "template: :1: non executable command in pipeline stage 2" },
    { tpl: '{{"abc}}', err: "template: :1: unterminated quoted string" },
    { tpl: "{{`abc}}", err: "template: :1: unterminated raw quoted string" },
    { tpl: "{{3x}}", err: 'template: :1: bad number syntax: "3x"' },
    { tpl: "{{.A & .B}}", err: 'template: :1: unexpected "&" in operand' },
    { tpl: "{{.A ☃}}", err: "template: :1: unrecognized character in action: U+2603 '☃'" },
    { tpl: "{{.A.}}", err: "template: :1: unexpected <.> in operand" },
    { tpl: "{{break}}", err: "template: :1: {{break}} outside {{range}}" },
    { tpl: "{{(.A}}", err: "template: :1: unclosed left paren" },
    { tpl: "{{.A)}}", err: "template: :1: unexpected right paren" },
    { tpl: "{{/* x */ }}", err: "template: :1: comment ends before closing delimiter" },
    { tpl: "{{/* x", err: "template: :1: unclosed comment" },
    { tpl: "{{range $i, $v, $w := .}}{{end}}", err: "template: :1: too many declarations in range" },
    { tpl: "{{template .A}}", err: 'template: :1: unexpected ".A" in template clause' },
    {
      tpl: '{{define "a"}}A{{end}}{{define "a"}}B{{end}}',
      err: 'template: :1: template: multiple definition of template "a"',
    },
    { tpl: "{{'ab'}}", err: "template: :1: malformed character constant: 'ab'" },
    { tpl: '{{"\\q"}}', err: "template: :1: invalid syntax" },
    { tpl: "{{99999999999999999999}}", err: 'template: :1: integer overflow: "99999999999999999999"' },
  ];
  it.each(cases)("$tpl", (c) => {
    const e = failure(() => parseTemplate(c.tpl));
    expect(e.code).toBe("TEMPLATE_ERROR");
    expect(e.message).toBe(c.err);
  });
});

describe("execution errors are Go's", () => {
  const cases: ErrCase[] = [
    {
      tpl: "{{.A.B}}",
      data: { A: "s" },
      err: 'template: :1:4: executing "" at <.A.B>: can\'t evaluate field B in type string',
    },
    {
      tpl: "{{.N.B}}",
      data: { N: null },
      err: 'template: :1:4: executing "" at <.N.B>: nil pointer evaluating interface {}.B',
    },
    {
      tpl: "{{.State.Health.Status}}",
      data: { State: {} },
      opts: { missingKey: "error" },
      err: 'template: :1:8: executing "" at <.State.Health.Status>: map has no entry for key "Health"',
    },
    {
      tpl: "x\n{{.A.B}}",
      data: { A: 1 },
      err: 'template: :2:4: executing "" at <.A.B>: can\'t evaluate field B in type int',
    },
    {
      tpl: "é{{.A.B}}",
      data: { A: 1 },
      err: 'template: :1:6: executing "" at <.A.B>: can\'t evaluate field B in type int',
    },
    {
      tpl: "{{.A}}",
      data: goStruct({ B: 1 }, "*formatter.imageContext"),
      err: 'template: :1:2: executing "" at <.A>: can\'t evaluate field A in type *formatter.imageContext',
    },
    {
      tpl: "{{join .A}}",
      data: { A: ["a"] },
      err: 'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1',
    },
    {
      tpl: "{{lower}}",
      err: 'template: :1:2: executing "" at <lower>: wrong number of args for lower: want 1 got 0',
    },
    {
      tpl: "{{and}}",
      err: 'template: :1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0',
    },
    {
      tpl: "{{printf}}",
      err: 'template: :1:2: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0',
    },
    {
      tpl: "{{not 1 2}}",
      err: 'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 2',
    },
    {
      tpl: "{{index .A 5}}",
      data: { A: [1] },
      err: 'template: :1:2: executing "" at <index .A 5>: error calling index: index out of range: 5',
    },
    {
      tpl: "{{index .M 1}}",
      data: { M: { a: "b" } },
      err: 'template: :1:2: executing "" at <index .M 1>: error calling index: value has type int; should be string',
    },
    {
      tpl: "{{index .N 0}}",
      data: { N: null },
      err: 'template: :1:2: executing "" at <index .N 0>: error calling index: index of untyped nil',
    },
    {
      tpl: '{{slice "abc" 2 1}}',
      err: 'template: :1:2: executing "" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1',
    },
    {
      tpl: "{{eq .A 1.0}}",
      data: { A: 1 },
      err: 'template: :1:2: executing "" at <eq .A 1.0>: error calling eq: incompatible types for comparison: int and float64',
    },
    {
      tpl: "{{eq 1}}",
      err: 'template: :1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison',
    },
    {
      tpl: "{{eq .A .B}}",
      data: { A: ["x"], B: ["x"] },
      err: 'template: :1:2: executing "" at <eq .A .B>: error calling eq: non-comparable type [x]: []string',
    },
    {
      tpl: "{{lt true false}}",
      err: 'template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison',
    },
    {
      tpl: '{{lt "a" 1}}',
      err: 'template: :1:2: executing "" at <lt "a" 1>: error calling lt: incompatible types for comparison: string and int',
    },
    { tpl: "{{len 3}}", err: 'template: :1:2: executing "" at <len 3>: error calling len: len of type int' },
    {
      tpl: "{{len .N}}",
      data: { N: null },
      err: 'template: :1:2: executing "" at <len .N>: error calling len: len of nil pointer',
    },
    {
      tpl: "{{upper .N}}",
      data: { N: 1 },
      err: 'template: :1:8: executing "" at <.N>: wrong type for value; expected string; got int',
    },
    {
      tpl: "{{upper .Missing}}",
      data: {},
      err: 'template: :1:8: executing "" at <.Missing>: invalid value; expected string',
    },
    {
      tpl: '{{join .L ","}}',
      data: { L: [1, 2] },
      err: 'template: :1:7: executing "" at <.L>: wrong type for value; expected []string; got []interface {}',
    },
    {
      tpl: '{{truncate .A "x"}}',
      data: { A: "s" },
      err: 'template: :1:14: executing "" at <"x">: expected integer; found "x"',
    },
    { tpl: "{{printf 1}}", err: 'template: :1:9: executing "" at <1>: expected string; found 1' },
    {
      tpl: "{{pad . -1 0}}",
      data: "x",
      err: 'template: :1:2: executing "" at <pad . -1 0>: error calling pad: strings: negative Repeat count',
    },
    {
      tpl: "{{truncate . -1}}",
      data: "abc",
      err: 'template: :1:2: executing "" at <truncate . -1>: error calling truncate: runtime error: slice bounds out of range [:-1]',
    },
    {
      tpl: "{{.A 1}}",
      data: { A: 1 },
      err: 'template: :1:2: executing "" at <.A>: A is not a method but has arguments',
    },
    { tpl: "{{1 2}}", err: 'template: :1:2: executing "" at <1>: can\'t give argument to non-function 1' },
    { tpl: "{{nil}}", err: 'template: :1:2: executing "" at <nil>: nil is not a command' },
    {
      tpl: "{{range .A}}{{end}}",
      data: { A: "abc" },
      err: 'template: :1:8: executing "" at <.A>: range can\'t iterate over abc',
    },
    {
      tpl: "{{range $i, $e := 3}}{{end}}",
      err: 'template: :1:18: executing "" at <3>: can\'t use 3 to iterate over more than one variable',
    },
    {
      tpl: '{{template "x"}}',
      err: 'template: :1:11: executing "" at <{{template "x"}}>: template "x" not defined',
    },
    {
      tpl: "{{call .F}}",
      data: { F: 1 },
      err: 'template: :1:2: executing "" at <call .F>: error calling call: non-function .F of type int',
    },
  ];
  it.each(cases)("$tpl over $data", (c) => {
    const t = parseTemplate(c.tpl, c.opts);
    const e = failure(() => t.execute(c.data));
    expect(e.code).toBe("TEMPLATE_ERROR");
    expect(e.message).toBe(c.err);
  });
});

describe("parse once, execute many", () => {
  it("keeps no state between executions", () => {
    const t = parseTemplate("{{$x := .A}}{{$x}}{{range .L}}{{$x = .}}{{end}}-{{$x}}");
    const got = [t.execute({ A: 1, L: [2] }), t.execute({ A: 3, L: [] }), t.execute({ A: 5 })];
    expect(got).toEqual(["1-2", "3-3", "5-5"]);
  });

  it("formats a 1,000-row table quickly", () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({
      Repository: `registry.example.com/team/app-${i}`,
      Tag: `v1.${i}`,
      ID: i.toString(16).padStart(12, "0"),
      CreatedSince: `${i % 30} days ago`,
      Size: `${i}MB`,
    }));
    const start = performance.now();
    const out = formatTable(
      "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
      rows,
      { Repository: "REPOSITORY", Tag: "TAG", ID: "IMAGE ID", CreatedSince: "CREATED", Size: "SIZE" },
    );
    const ms = performance.now() - start;
    const lines = out.split("\n");
    expect(lines).toHaveLength(1002);
    expect(lines[1]).toBe("registry.example.com/team/app-0     v1.0      000000000000   0 days ago    0MB");
    expect(ms).toBeLessThan(1000);
  });
});

describe("formatTable: docker/cli's formatter", () => {
  const headers = {
    Repository: "REPOSITORY",
    Tag: "TAG",
    ID: "IMAGE ID",
    CreatedSince: "CREATED",
    Size: "SIZE",
  };
  const rows = [
    { Repository: "alpine", Tag: "latest", ID: "05455a08881e", CreatedSince: "2 weeks ago", Size: "7.38MB" },
    {
      Repository: "ghcr.io/org/tool",
      Tag: "1.2.3",
      ID: "9c7a54a9a43c",
      CreatedSince: "3 months ago",
      Size: "12.1MB",
    },
  ];
  const cases: { format: string; rows: unknown[]; headers?: Record<string, string>; want: string }[] = [
    {
      format: "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
      rows,
      want:
        "REPOSITORY         TAG       IMAGE ID       CREATED        SIZE\n" +
        "alpine             latest    05455a08881e   2 weeks ago    7.38MB\n" +
        "ghcr.io/org/tool   1.2.3     9c7a54a9a43c   3 months ago   12.1MB\n",
    },
    {
      format: "table {{.Repository}}\t{{.Tag}}",
      rows: rows.slice(0, 1),
      want: "REPOSITORY   TAG\nalpine       latest\n",
    },
    {
      format: "table {{upper .Repository}}\\t{{json .Tag}}\\t{{truncate .ID 3}}",
      rows: rows.slice(0, 1),
      want: 'REPOSITORY   TAG        IMAGE ID\nALPINE       "latest"   054\n',
    },
    {
      format: "table {{pad .ID 1 1}}|{{.Tag}}",
      rows: rows.slice(0, 1),
      want: " IMAGE ID |TAG\n 05455a08881e |latest\n",
    },
    { format: "table {{.Repository}}:{{.Tag}}", rows: [], want: "REPOSITORY:TAG\n" },
    {
      format: "table {{.Tag}}\\t{{.Nope}}",
      rows: [{ Tag: "t", Nope: 1 }],
      want: "TAG       <no value>\nt         1\n",
    },
    {
      format: 'table {{.Tag}}\\t{{index .Labels "x"}}\\t{{.ID}}',
      rows: [{ Tag: "t", Labels: { x: "1" }, ID: "abc" }],
      want: "TAG       \nt         1         abc\n",
    },
    { format: "table   {{.Tag}}  ", rows: rows.slice(0, 1), want: "TAG\nlatest\n" },
    { format: "  table {{.Tag}}", rows: rows.slice(0, 1), want: "table latest\n" },
    { format: "{{.Repository}}\\t{{.Tag}}", rows, want: "alpine\tlatest\nghcr.io/org/tool\t1.2.3\n" },
    { format: "json", rows: [{ A: "<x>", B: 1 }], want: '{"A":"<x>","B":1}\n' },
    { format: "{{.Tag}}\\n", rows: rows.slice(0, 1), want: "latest\n\n" },
  ];
  it.each(cases)("$format", (c) => {
    const got = formatTable(c.format, c.rows, c.headers ?? headers);
    expect(got).toBe(c.want);
  });

  const errs: { format: string; err: string }[] = [
    { format: "table {{.Tag", err: "template parsing error: template: :1: unclosed action" },
    { format: "{{foo .Tag}}", err: 'template parsing error: template: :1: function "foo" not defined' },
    {
      format: "table {{.Tag.X}}",
      err: 'template parsing error: template: :1:6: executing "" at <.Tag.X>: can\'t evaluate field X in type string',
    },
  ];
  it.each(errs)("$format fails as docker/cli", (c) => {
    const e = failure(() => formatTable(c.format, rows, headers));
    expect(e.code).toBe("TEMPLATE_ERROR");
    expect(e.message).toBe(c.err);
  });
});

describe("alignColumns and tabwrite: text/tabwriter", () => {
  const cases: { lines: string[][]; opts?: Parameters<typeof alignColumns>[1]; want: string }[] = [
    {
      lines: [
        ["NAME", "VALUE"],
        ["a", "b"],
      ],
      want: "NAME      VALUE\na         b\n",
    },
    {
      lines: [
        ["ID", "NAME", "SIZE"],
        ["abcdef123456", "x", "1"],
      ],
      want: "ID             NAME      SIZE\nabcdef123456   x         1\n",
    },
    {
      lines: [["a", "b", "c"], ["aaaa", "b"], ["x"], ["aa", "bbb", "c"]],
      opts: { minWidth: 0, padding: 1 },
      want: "a    b c\naaaa b\nx\naa bbb c\n",
    },
    {
      lines: [
        ["日本", "x"],
        ["ab", "y"],
      ],
      opts: { minWidth: 0, padding: 1 },
      want: "日本 x\nab   y\n",
    },
    { lines: [["a", "b"], [], ["c", "d"]], opts: { minWidth: 0, padding: 2 }, want: "a  b\n\nc  d\n" },
    {
      lines: [
        ["a", "b"],
        ["aaaa", "c"],
      ],
      opts: { minWidth: 0, padding: 1, padChar: "\t", tabWidth: 4 },
      want: "a\t\tb\naaaa\tc\n",
    },
  ];
  it.each(cases)("$lines with $opts", (c) => {
    const got = alignColumns(c.lines, c.opts);
    expect(got).toBe(c.want);
  });

  const texts: { text: string; want: string }[] = [
    { text: "", want: "" },
    { text: "\t", want: "" },
    { text: "a\tb", want: "a.........b" },
    { text: "a\tb\t\n", want: "a.........b.........\n" },
    { text: "1\t2\t3\f11\t222\t3333\n", want: "1.........2.........3\n11........222.......3333\n" },
    { text: "x\ty\nlonger-cell\tz\nq\n", want: "x.............y\nlonger-cell...z\nq\n" },
  ];
  it.each(texts)("tabwrite($text)", (c) => {
    const got = tabwrite(c.text, { minWidth: 10, padding: 3, padChar: "." });
    expect(got).toBe(c.want);
  });

  const widths: [string, number][] = [
    ["abc", 3],
    ["日本語", 6],
    ["é", 1],
    ["e\u0301", 1],
    ["👍", 2],
    ["\u200b", 0],
    ["a\u0007b", 2],
  ];
  it.each(widths)("displayWidth(%j) = %i", (s, want) => {
    const got = displayWidth(s);
    expect(got).toBe(want);
  });
});
