#!/bin/sh
# affected-stacks.sh: reads the files a pull request changes (one per line on
# stdin) and prints the stacks whose preview they can change, as a JSON array
# for a workflow matrix:
#   - only docs (docs/, *.md): none
#   - only stack files Pulumi.<stack>.yaml (and docs): those stacks
#   - anything else (code, Pulumi.yaml, go.mod, ...): every stack
set -eu
all='["dev","staging","prod"]'
stacks=""
while IFS= read -r file || [ -n "$file" ]; do  # a last line without newline counts
  case "$file" in
    "" | docs/* | *.md) ;;
    Pulumi.dev.yaml | Pulumi.staging.yaml | Pulumi.prod.yaml)
      s=${file#Pulumi.}
      s=${s%.yaml}
      case " $stacks " in *" $s "*) ;; *) stacks="$stacks $s" ;; esac ;;
    *) echo "$all"; exit 0 ;;
  esac
done
out=""
for s in dev staging prod; do
  case " $stacks " in *" $s "*) out="$out${out:+,}\"$s\"" ;; esac
done
echo "[$out]"
