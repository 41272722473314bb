"""Shell command lines as the approval policy sees them: every simple command, quotes removed.

A small lexer for the part of bash that decides *which programs run*: quotes and escapes,
`;` `&&` `||` `|` `&` and newlines, subshells and `{ …; }`, `$(…)`, backticks, `<(…)`,
here-documents and redirections. Wrappers (`command`, `env`, `exec`, `nice`, `timeout`,
`sudo`, `xargs`, …) are unwrapped, and `sh -c` / `bash -c` / `eval` strings are parsed again,
so `"rm" -rf ~/*`, `command sudo id`, `bash -c 'sudo id'` and `rm  -rf  /` all show the
command that really runs. What it cannot follow raises ShellParseError; a command whose name
is only known at run time (`$X id`, `{su,do}`, globs) is flagged `dynamic`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

MAX_DEPTH = 12
MAX_COMMANDS = 2000  # beyond this a line is not worth following: it asks
METACHARS = frozenset(" \t\n;&|()<>")
# Words that start (or end) a compound command: the command is what follows them.
KEYWORDS = frozenset(
    "! { } if then else elif fi do done while until for in case esac select function time "
    "coproc".split()
)
# Programs that run the rest of their arguments as a command.
WRAPPERS = frozenset(
    "command builtin env exec nice ionice nohup timeout sudo doas su runuser setsid stdbuf "
    "time xargs chroot unshare nsenter flock chrt taskset watch strace ltrace fakeroot "
    "firejail torsocks proxychains proxychains4 script".split()
)
SHELLS = frozenset("sh bash dash zsh ksh mksh ash busybox fish".split())
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_REDIRECT = re.compile(r"&>>|&>|<<<|<<-|<<|<>|<&|>&|>>|>\||<|>")
_BRACE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ShellParseError(ValueError):
    """The command line uses shell syntax the policy cannot follow (so it asks)."""


@dataclass
class ParsedCommand:
    """What a command line runs: each simple command as words, and the line normalised."""

    commands: list[list[str]] = field(default_factory=list)
    line: str = ""  # top-level words and operators, quotes removed, single spaces
    dynamic: bool = False  # some command name is computed when it runs

    def texts(self) -> list[str]:
        """Each simple command as one string: program name without its folder, single spaces."""
        return [" ".join([posixpath.basename(c[0]) or c[0], *c[1:]]) for c in self.commands]


def parse_command(text: str) -> ParsedCommand:
    """Parse a command line; raise ShellParseError if it cannot be followed."""
    result = ParsedCommand()
    lexer = _Lexer(text, result, depth=0)
    lexer.run()
    result.line = " ".join(lexer.line)
    return result


class _Lexer:
    def __init__(self, text: str, out: ParsedCommand, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ShellParseError("commands nested too deeply")
        self.text, self.i, self.out, self.depth = text, 0, out, depth
        self.words: list[str] = []
        self.line: list[str] = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, strip tabs, expands)

    # -- the command level ----------------------------------------------------------------

    def run(self, until_paren: bool = False) -> int:
        """Read commands to the end (or to the `)` closing a `$(`); return where it stopped."""
        text, depth = self.text, 0
        while self.i < len(text):
            c = text[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\n":
                self._end()
                self.i += 1
                if self.line and self.line[-1] not in (";", "&&", "||", "|", "&", "("):
                    self.line.append(";")
                self._heredoc_bodies()
            elif c == "#":  # run() only stops at word starts: this begins a comment
                while self.i < len(text) and text[self.i] != "\n":
                    self.i += 1
            elif c == "(":
                self._end()
                depth += 1
                self.i += 1
                self.line.append("(")
            elif c == ")":
                self._end()
                self.i += 1
                if until_paren and depth == 0:
                    return self.i
                depth = max(depth - 1, 0)
                self.line.append(")")
            elif c in "<>":
                self._redirect()
            elif c in ";&|":
                op = re.match(r"&&|\|\||;;&|;;|;&|\|&|&>>|&>|[;&|]", text[self.i :]).group()
                if op.startswith("&>"):
                    self._redirect()
                    continue
                self._end()
                self.i += len(op)
                self.line.append(op)
            else:
                word = self._word()
                if word is not None:
                    self.words.append(word)
                    self.line.append(word)
        if until_paren:
            raise ShellParseError("a `$(` is not closed")
        if self.heredocs:
            self._end()
        self._end()
        return self.i

    def _end(self) -> None:
        """The current simple command is complete: record it (and what it runs)."""
        words, self.words = self.words, []
        while words and (words[0] in KEYWORDS or _ASSIGNMENT.match(words[0])):
            words = words[1:]
        if words:
            self._record(words, self.depth)

    def _record(self, words: list[str], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ShellParseError("commands nested too deeply")
        out = self.out
        if len(out.commands) >= MAX_COMMANDS:
            raise ShellParseError(f"more than {MAX_COMMANDS} commands in one line")
        out.commands.append(words)
        if _dynamic(words[0]):
            out.dynamic = True
        program = posixpath.basename(words[0])
        if program in WRAPPERS:
            for start in range(1, len(words)):  # every suffix: options differ per wrapper
                rest = words[start:]
                while rest and _ASSIGNMENT.match(rest[0]):
                    rest = rest[1:]
                if rest and not rest[0].startswith("-"):
                    out.commands.append(rest)
                    out.dynamic = out.dynamic or rest[0].startswith(("$", "`"))
                    self._nested(rest, depth + 1)
            if program == "env":  # env -S 'cmd args' / --split-string=…
                for i, w in enumerate(words):
                    if w.startswith("--split-string="):
                        self._sub(w.split("=", 1)[1], depth + 1)
                    elif w in ("-S", "--split-string") and i + 1 < len(words):
                        self._sub(words[i + 1], depth + 1)
        else:
            self._nested(words, depth)

    def _nested(self, words: list[str], depth: int) -> None:
        """Commands hidden in arguments: `sh -c '…'`, `eval …`, `find -exec … ;`."""
        program = posixpath.basename(words[0])
        if program in SHELLS:
            args = words[1:]
            if program == "busybox" and args and posixpath.basename(args[0]) in SHELLS:
                args = args[1:]
            self._shell_script(args, depth)
        elif program == "eval":
            self._sub(" ".join(words[1:]), depth + 1)
        elif program == "find":
            for i, w in enumerate(words):
                if w in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(words):
                    inner = []
                    for a in words[i + 1 :]:
                        if a in (";", "+"):
                            break
                        inner.append(a)
                    if inner:
                        self._record(inner, depth + 1)
        elif program in ("trap",) and len(words) > 1:
            self._sub(words[1], depth + 1)

    def _shell_script(self, args: list[str], depth: int) -> None:
        """`bash [options] -c 'script' …`: parse the script (options may come in any order)."""
        i, takes_c = 0, False
        while i < len(args):
            w = args[i]
            if w in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if w == "--command":
                takes_c = True
            elif w.startswith("--"):
                pass
            elif w.startswith(("-", "+")) and len(w) > 1:
                takes_c = takes_c or "c" in w[1:]
            else:
                if takes_c:
                    self._sub(w, depth + 1)
                return
            i += 1

    def _sub(self, script: str, depth: int) -> None:
        """Parse a string that a shell will run (substitutions, `sh -c`, eval)."""
        if not script.strip():
            return
        _Lexer(script, self.out, depth + 1).run()

    # -- redirections and here-documents -----------------------------------------------------

    def _redirect(self) -> None:
        text = self.text
        if text[self.i] in "<>" and text[self.i + 1 : self.i + 2] == "(":  # <(…) >(…)
            self.i = _Lexer(text, self.out, self.depth + 1)._inner(self.i + 2)
            return
        if text[self.i - 1 : self.i].isdigit() and self.words and self.words[-1].isdigit():
            self.words.pop()  # `2>`: the digits name a file descriptor
            if self.line and self.line[-1].isdigit():
                self.line.pop()
        op = _REDIRECT.match(text, self.i).group()
        self.i += len(op)
        while self.i < len(text) and text[self.i] in " \t":
            self.i += 1
        if op in ("<<", "<<-"):
            start = self.i
            delimiter = self._word()
            if delimiter is None:
                raise ShellParseError("a here-document has no delimiter")
            quoted = any(q in text[start : self.i] for q in "'\"\\")
            self.heredocs.append((delimiter, op == "<<-", not quoted))
        elif self.i < len(text) and text[self.i] not in METACHARS:
            self._word()  # the file: not part of the command

    def _heredoc_bodies(self) -> None:
        """After the newline that ends a here-document's command: skip (or scan) its body."""
        text = self.text
        for delimiter, strip_tabs, expands in self.heredocs:
            body = []
            while self.i < len(text):
                end = text.find("\n", self.i)
                end = len(text) if end < 0 else end
                line = text[self.i : end]
                self.i = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                body.append(line)
            if expands:
                _scan_substitutions("\n".join(body), self)
        self.heredocs = []

    # -- words ------------------------------------------------------------------------------

    def _word(self) -> str | None:
        """One word with quotes and escapes removed (substitutions kept as written)."""
        text, out = self.text, []
        start = self.i
        while self.i < len(text):
            c = text[self.i]
            if c in METACHARS:
                if c == "(" and out and "".join(out).endswith("="):  # arr=(a b)
                    end = _Lexer(text, self.out, self.depth + 1)._inner(self.i + 1)
                    out.append(text[self.i : end])
                    self.i = end
                    continue
                break
            if c == "\\":
                if self.i + 1 < len(text) and text[self.i + 1] == "\n":
                    self.i += 2
                    continue
                out.append(text[self.i + 1 : self.i + 2])
                self.i += 2
            elif c == "'":
                end = text.find("'", self.i + 1)
                if end < 0:
                    raise ShellParseError("a ' quote is not closed")
                out.append(text[self.i + 1 : end])
                self.i = end + 1
            elif c == '"':
                out.append(self._double_quoted())
            elif c == "$":
                out.append(self._dollar())
            elif c == "`":
                out.append(self._backtick())
            else:
                out.append(c)
                self.i += 1
        if self.i == start:
            return None
        return _BRACE_VAR.sub(r"$\1", "".join(out))

    def _double_quoted(self) -> str:
        text, out = self.text, []
        self.i += 1
        while self.i < len(text):
            c = text[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < len(text):
                nxt = text[self.i + 1]
                if nxt == "\n":
                    pass
                elif nxt in '$`"\\':
                    out.append(nxt)
                else:
                    out.append(c + nxt)
                self.i += 2
            elif c == "$":
                out.append(self._dollar())
            elif c == "`":
                out.append(self._backtick())
            else:
                out.append(c)
                self.i += 1
        raise ShellParseError('a " quote is not closed')

    def _dollar(self) -> str:
        """`$(…)`, `$((…))`, `${…}`, `$'…'` or a plain `$`: the text as written."""
        text, start = self.text, self.i
        nxt = text[self.i + 1 : self.i + 2]
        if text.startswith("$((", self.i):
            end = text.find("))", self.i)
            if end < 0:
                raise ShellParseError("a $(( is not closed")
            inner = text[self.i + 3 : end]
            if "$(" in inner or "`" in inner:
                raise ShellParseError("a command inside $(( … )) arithmetic")
            self.i = end + 2
        elif nxt == "(":
            self.i = _Lexer(text, self.out, self.depth + 1)._inner(self.i + 2)
        elif nxt == "{":
            end = text.find("}", self.i)
            if end < 0:
                raise ShellParseError("a ${ is not closed")
            if "$(" in text[self.i : end] or "`" in text[self.i : end]:
                raise ShellParseError("a command inside ${ … }")
            self.i = end + 1
        elif nxt == "'":
            self.out.dynamic = True  # $'\x73udo': decoded only by the shell
            end = text.find("'", self.i + 2)
            while end > 0 and text[end - 1] == "\\":
                end = text.find("'", end + 1)
            if end < 0:
                raise ShellParseError("a $' quote is not closed")
            self.i = end + 1
        else:
            self.i += 1
        return text[start : self.i]

    def _inner(self, begin: int) -> int:
        """Parse commands from begin to the matching `)`; return the index after it."""
        self.i = begin
        return self.run(until_paren=True)

    def _backtick(self) -> str:
        text, start = self.text, self.i
        end = self.i + 1
        while end < len(text) and text[end] != "`":
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise ShellParseError("a ` quote is not closed")
        inner = re.sub(r"\\([$`\\])", r"\1", text[start + 1 : end])
        self._sub(inner, self.depth)
        self.i = end + 1
        return text[start : self.i]


def _dynamic(name: str) -> bool:
    """A command name the shell computes: variables, substitutions, globs, brace lists."""
    if name in ("[", "[["):
        return False
    return any(ch in name for ch in "$`*?[") or ("{" in name and ("," in name or ".." in name))


def _scan_substitutions(body: str, parent: _Lexer) -> None:
    """The `$(…)` and backticks in an unquoted here-document body run: parse them."""
    scanner = _Lexer(body, parent.out, parent.depth + 1)
    while scanner.i < len(body):
        c = body[scanner.i]
        if c == "\\":
            scanner.i += 2
        elif c == "$":
            scanner._dollar()
        elif c == "`":
            scanner._backtick()
        else:
            scanner.i += 1
