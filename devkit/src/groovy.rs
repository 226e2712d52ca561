//! Groovy, as far as the tests of the Jenkinsfiles need it: tokens and blocks of a declarative
//! pipeline (tests/tests/pipeline_assets.rs for Pipewarden's own, reference_pipeline.rs for the
//! reference app's).

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Word(String),
    Str(String),
    Punct(char),
}

/// Groovy tokens, enough for a declarative pipeline: words, punctuation, and single-quoted strings
/// (plain and triple) with their escapes undone. Double-quoted strings are refused: Groovy would
/// interpolate `${...}` in them before the shell sees them.
pub fn groovy_tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize, s: &str| s.chars().enumerate().all(|(k, c)| chars.get(i + k) == Some(&c));
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            while i < chars.len() && !at(i, "*/") {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            return Err(format!("double-quoted string at character {i}: use single quotes for shell commands"));
        } else if c == '\'' {
            let quote = if at(i, "'''") { "'''" } else { "'" };
            let start = i;
            i += quote.len();
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string starting at character {start}")),
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('\n') => {}
                            Some('n') => value.push('\n'),
                            Some(&escaped) => value.push(escaped),
                            None => return Err(format!("unterminated string starting at character {start}")),
                        }
                        i += 2;
                    }
                    Some(_) if at(i, quote) => break,
                    Some(&other) => {
                        value.push(other);
                        i += 1;
                    }
                }
            }
            i += quote.len();
            tokens.push(Token::Str(value));
            continue;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
            continue;
        } else if !c.is_whitespace() {
            tokens.push(Token::Punct(c));
        }
        i += 1;
    }
    Ok(tokens)
}

/// The tokens inside the braces that follow `tokens[from]`.
pub fn block(tokens: &[Token], from: usize) -> &[Token] {
    let open = from + tokens[from..].iter().position(|t| *t == Token::Punct('{')).expect("a block follows");
    let mut depth = 0;
    for (k, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return &tokens[open + 1..k];
        }
    }
    panic!("unclosed block");
}
