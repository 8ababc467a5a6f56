package main

// Rendering the reference: the key tables and the stack files' values as
// Markdown.

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/kcp-tmc/kcp-tmc/stacks"
)

// referenceTables renders a table for the top-level keys that are not
// objects, one per object, and one for the secrets.
func referenceTables(keys []keyDoc) string {
	known := map[string]bool{}
	for _, k := range keys {
		known[k.Key] = true
	}
	var sections []string // object sections, in struct order
	intro := map[string]keyDoc{}
	var general, secrets []keyDoc
	rows := map[string][]keyDoc{}
	for _, k := range keys {
		switch {
		case k.Secret:
			secrets = append(secrets, k)
		case k.Key == k.Section && k.Object:
			sections = append(sections, k.Section)
			intro[k.Section] = k
		case k.Key == k.Section:
			general = append(general, k)
		default:
			rows[k.Section] = append(rows[k.Section], k)
		}
	}
	var b strings.Builder
	links := []string{"[top-level keys](#top-level-keys)"}
	for _, s := range sections {
		links = append(links, fmt.Sprintf("[%s](#%s)", s, strings.ToLower(s)))
	}
	links = append(links, "[secret keys](#secret-keys)")
	fmt.Fprintf(&b, "Sections: %s.\n", strings.Join(links, " · "))

	header := "| key | type | dev | staging | prod | description |\n|---|---|---|---|---|---|\n"
	row := func(k keyDoc) {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", k.Key, k.Type,
			k.Defaults[0], k.Defaults[1], k.Defaults[2], markdownText(k.Description, parentOf(k.Key), known))
	}
	b.WriteString("\n### Top-level keys\n\n" + header)
	for _, k := range general {
		row(k)
	}
	for _, s := range sections {
		in := intro[s]
		fmt.Fprintf(&b, "\n### %s\n\n`kcp-tmc:%s` (%s): %s\n\n", s, s, in.Type, markdownText(in.Description, "", known))
		b.WriteString(header)
		for _, k := range rows[s] {
			row(k)
		}
	}
	b.WriteString("\n### Secret keys\n\n" +
		"Set with `pulumi config set --secret kcp-tmc:<key> -s <stack>` (from a file: `< file`); a plaintext value is\n" +
		"rejected. Profiles set no secret.\n\n" +
		"| key | type | description |\n|---|---|---|\n")
	for _, k := range secrets {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Key, k.Type, markdownText(k.Description, parentOf(k.Key), known))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// parentOf is the prefix of a key's siblings: "kcp.performance." for
// kcp.performance.requestTimeout.
func parentOf(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		return key[:i+1]
	}
	return ""
}

var (
	codeSpan = regexp.MustCompile("`[^`]*`")
	docLink  = regexp.MustCompile(`\bdocs/([a-z-]+\.md)\b`)
	word     = regexp.MustCompile(`[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*`)
)

// markdownText makes a doc comment a table cell: the keys it names become
// code (a dotted key, or a camelCase sibling or top-level key), docs/x.md a
// link, and outside code spans <, > and | are escaped.
func markdownText(text, parent string, known map[string]bool) string {
	var b strings.Builder
	last := 0
	for _, span := range codeSpan.FindAllStringIndex(text, -1) {
		b.WriteString(markdownProse(text[last:span[0]], parent, known))
		b.WriteString(strings.ReplaceAll(text[span[0]:span[1]], "|", `\|`))
		last = span[1]
	}
	b.WriteString(markdownProse(text[last:], parent, known))
	return b.String()
}

func markdownProse(s, parent string, known map[string]bool) string {
	s = word.ReplaceAllStringFunc(s, func(w string) string {
		camel := strings.IndexFunc(w[1:], unicode.IsUpper) >= 0 && unicode.IsLower(rune(w[0]))
		switch {
		case strings.Contains(w, ".") && known[w]:
			return "`" + w + "`"
		case camel && (known[parent+w] || known[w]):
			return "`" + w + "`"
		}
		return w
	})
	s = strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", `\|`).Replace(s)
	return docLink.ReplaceAllString(s, "[$1]($1)")
}

// stackFileTable renders the kcp-tmc keys the checked-in Pulumi.<stack>.yaml
// files set, flattened to dotted keys, one column per stack.
func stackFileTable(root string) (string, error) {
	set := map[string]*[3]string{}
	var order []string
	for e, env := range stacks.Environments {
		raw, err := os.ReadFile(filepath.Join(root, "Pulumi."+env+".yaml"))
		if err != nil {
			return "", err
		}
		var file struct {
			Config map[string]any `yaml:"config"`
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return "", fmt.Errorf("Pulumi.%s.yaml: %w", env, err)
		}
		flat := map[string]string{}
		for k, v := range file.Config {
			if key, ok := strings.CutPrefix(k, stacks.Namespace+":"); ok {
				flattenYAML(key, v, flat)
			}
		}
		for k, v := range flat {
			if set[k] == nil {
				set[k] = &[3]string{}
				order = append(order, k)
			}
			set[k][e] = v
		}
	}
	sort.Strings(order)
	var b strings.Builder
	b.WriteString("| key | Pulumi.dev.yaml | Pulumi.staging.yaml | Pulumi.prod.yaml |\n|---|---|---|---|\n")
	for _, k := range order {
		v := set[k]
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k, orDash(v[0]), orDash(v[1]), orDash(v[2]))
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// flattenYAML writes a stack file value as dotted keys; a secure value reads "(secret)".
func flattenYAML(key string, v any, out map[string]string) {
	m, isMap := v.(map[string]any)
	switch {
	case isMap && len(m) == 1 && m["secure"] != nil:
		out[key] = "(secret)"
	case isMap:
		for k, sub := range m {
			flattenYAML(key+"."+k, sub, out)
		}
	default:
		out[key] = "`" + strings.ReplaceAll(yamlFlow(v), "|", `\|`) + "`"
	}
}

// yamlFlow writes a value in YAML flow style, on one line.
func yamlFlow(v any) string {
	switch v := v.(type) {
	case []any:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = yamlFlow(item)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		items := make([]string, len(keys))
		for i, k := range keys {
			items[i] = k + ": " + yamlFlow(v[k])
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
