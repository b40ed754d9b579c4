//! Reading a numeric answer out of free model text, and comparing answers.
//!
//! Small models rarely follow an answer format exactly: they write "The answer is $18.",
//! "\boxed{18}", "#### 18", or just end with a number. Every search method votes and is
//! scored on the extracted answer, so extraction must be forgiving yet deterministic.
//!
//! Numbers are normalised to a canonical decimal string: thousands separators, currency
//! signs, percent signs, trailing periods and unit words are dropped; leading zeros of the
//! integer part and trailing zeros of the fraction are removed (`"1,234.50"` → `"1234.5"`,
//! `"$18.00"` → `"18"`, `"-0"` → `"0"`). A simple fraction `a/b` is converted to its
//! decimal value (`"3/4"` → `"0.75"`, `"1/3"` → `"0.3333333333"`), because a gold answer
//! is always a plain decimal and two fractions should compare by value. Mixed numbers
//! (`"2 1/2"`) and scientific notation are not recognised as one number.

/// One number found in a text: its byte span and its normalised value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NumberToken {
    start: usize,
    end: usize,
    value: String,
}

/// Extracts the final numeric answer from a model's text.
///
/// Explicit answer markers win over bare numbers, and among markers the one that appears
/// last wins (a model that corrects itself states the corrected answer later). Markers:
/// "answer is" / "answer:" (case-insensitive; the number follows, or follows the last `=`
/// of that line, as in "the answer is 5 + 3 = 8"), `\boxed{...}` and `#### ...`. Without
/// a marker the last number in the text is taken. Returns `None` when the text holds no
/// number at all.
///
/// ```
/// use thinktree_reason::answer::extract_answer;
/// assert_eq!(extract_answer("3 + 4 = 7 apples. The answer is $1,200.").as_deref(), Some("1200"));
/// assert_eq!(extract_answer("So she has \\boxed{2.50} dollars").as_deref(), Some("2.5"));
/// assert_eq!(extract_answer("no digits here"), None);
/// ```
pub fn extract_answer(text: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |pos: usize, value: Option<String>| {
        if let Some(v) = value
            && best.as_ref().is_none_or(|(p, _)| pos >= *p)
        {
            best = Some((pos, v));
        }
    };

    let lower = text.to_ascii_lowercase();
    for marker in ["answer is", "answer:"] {
        for (pos, _) in lower.match_indices(marker) {
            let rest = &text[pos + marker.len()..];
            consider(pos, number_after_marker(rest));
        }
    }
    for (pos, _) in text.match_indices("boxed{") {
        let rest = &text[pos + "boxed{".len()..];
        consider(pos, boxed_number(rest));
    }
    for (pos, _) in text.match_indices("####") {
        let rest = &text[pos + 4..];
        consider(
            pos,
            first_number(line_of(rest.trim_start_matches([' ', '\t', ':']))),
        );
    }

    if let Some((_, v)) = best {
        return Some(v);
    }
    scan_numbers(text).pop().map(|t| t.value)
}

/// Normalises a string holding a single (possibly decorated) number.
///
/// Accepts surrounding whitespace, a currency sign before the number (`$`, `€`, `£`),
/// thousands commas, and after it a period, `%` or unit words (`"18 dollars"`). Returns
/// `None` unless exactly one number is present and nothing else but such decoration.
/// Fractions `a/b` become their decimal value (see the module docs).
///
/// ```
/// use thinktree_reason::answer::normalize_number;
/// assert_eq!(normalize_number("1,234.50").as_deref(), Some("1234.5"));
/// assert_eq!(normalize_number("$18").as_deref(), Some("18"));
/// assert_eq!(normalize_number("3/4").as_deref(), Some("0.75"));
/// assert_eq!(normalize_number("12 and 13"), None);
/// ```
pub fn normalize_number(s: &str) -> Option<String> {
    let tokens = scan_numbers(s);
    let [token] = tokens.as_slice() else {
        return None;
    };
    let prefix_ok = s[..token.start]
        .chars()
        .all(|c| c.is_whitespace() || matches!(c, '$' | '€' | '£'));
    let suffix_ok = s[token.end..]
        .chars()
        .all(|c| c.is_whitespace() || c.is_alphabetic() || matches!(c, '.' | '%' | '!'));
    (prefix_ok && suffix_ok).then(|| token.value.clone())
}

/// Whether two answers are the same.
///
/// When both normalise to numbers they are compared by value with a tolerance of 1e-6
/// (relative for magnitudes above 1), so `"18"`, `"18.0"` and `"$18"` agree; otherwise
/// the trimmed, lowercased strings must be equal.
///
/// ```
/// use thinktree_reason::answer::answers_match;
/// assert!(answers_match("18.00", "$18"));
/// assert!(!answers_match("18", "19"));
/// ```
pub fn answers_match(a: &str, b: &str) -> bool {
    let parsed = |s: &str| normalize_number(s).and_then(|n| n.parse::<f64>().ok());
    match (parsed(a), parsed(b)) {
        (Some(x), Some(y)) => {
            let scale = x.abs().max(y.abs()).max(1.0);
            (x - y).abs() <= 1e-6 * scale
        }
        _ => a.trim().to_lowercase() == b.trim().to_lowercase(),
    }
}

/// The gold answer of a GSM8K `answer` field: the number after the last `####`.
///
/// Returns `None` when there is no `####` or no number after it, so a malformed data line
/// can be reported rather than silently scored as wrong.
///
/// ```
/// use thinktree_reason::answer::gold_answer;
/// assert_eq!(gold_answer("5 + 7 = 12 cookies\n#### 1,012").as_deref(), Some("1012"));
/// assert_eq!(gold_answer("no marker 12"), None);
/// ```
pub fn gold_answer(answer_field: &str) -> Option<String> {
    let pos = answer_field.rfind("####")?;
    let rest = answer_field[pos + 4..].trim();
    normalize_number(rest).or_else(|| first_number(line_of(rest)))
}

/// The text up to (not including) the first newline.
fn line_of(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

fn first_number(s: &str) -> Option<String> {
    scan_numbers(s).into_iter().next().map(|t| t.value)
}

/// The number stated after "answer is": on the same line (or the next non-empty one when
/// the marker ends its line), after the last `=` if the model wrote an equation there.
fn number_after_marker(rest: &str) -> Option<String> {
    let line = line_of(rest.trim_start());
    let tail = match line.rfind('=') {
        Some(eq) if first_number(&line[eq + 1..]).is_some() => &line[eq + 1..],
        _ => line,
    };
    first_number(tail)
}

/// The number inside `\boxed{...}`, given the text after the opening brace. Nested
/// braces are balanced, and `\frac{a}{b}` is read as the fraction `a/b`.
fn boxed_number(rest: &str) -> Option<String> {
    let mut depth = 1usize;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let content = &rest[..end?];
    let content = content.replace("\\dfrac", "\\frac");
    if let Some(f) = content.find("\\frac{") {
        let inner = &content[f + "\\frac{".len()..];
        let parts: Vec<&str> = inner.splitn(2, "}{").collect();
        if let [num, den] = parts.as_slice() {
            let den = den.trim_end_matches('}');
            let sign = if content[..f].trim_end().ends_with('-') {
                "-"
            } else {
                ""
            };
            if let Some(v) = first_number(&format!("{sign}{num}/{den}")) {
                return Some(v);
            }
        }
    }
    first_number(&content)
}

/// All numbers in `text`, left to right.
///
/// A `-` is a sign only when it does not follow a letter or digit (so "5-3" is two
/// numbers, 5 and 3). A comma is a thousands separator only when exactly three digits
/// follow it. A `.` is a decimal point only when a digit follows it.
fn scan_numbers(text: &str) -> Vec<NumberToken> {
    let b = text.as_bytes();
    let digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let prev_alnum = i > 0 && b[i - 1].is_ascii_alphanumeric();
        let start = i;
        let mut j = i;
        let mut negative = false;
        if b[j] == b'-' && !prev_alnum {
            let k = if b.get(j + 1) == Some(&b'$') {
                j + 2
            } else {
                j + 1
            };
            if digit_at(k) || (b.get(k) == Some(&b'.') && digit_at(k + 1)) {
                negative = true;
                j = k;
            }
        }
        let starts_here =
            digit_at(j) || (b[j] == b'.' && digit_at(j + 1) && !digit_at(j.wrapping_sub(1)));
        if !starts_here {
            i += 1;
            continue;
        }

        let mut int_part = String::new();
        while j < b.len() {
            if b[j].is_ascii_digit() {
                int_part.push(b[j] as char);
                j += 1;
            } else if b[j] == b','
                && (1..=3).all(|d| digit_at(j + d))
                && !digit_at(j + 4)
                && !int_part.is_empty()
            {
                j += 1;
            } else {
                break;
            }
        }
        let mut frac_part = String::new();
        if b.get(j) == Some(&b'.') && digit_at(j + 1) {
            j += 1;
            while digit_at(j) {
                frac_part.push(b[j] as char);
                j += 1;
            }
        }
        let mut value = canonical_decimal(negative, &int_part, &frac_part);
        if frac_part.is_empty() && b.get(j) == Some(&b'/') && digit_at(j + 1) {
            let mut k = j + 1;
            let mut den = String::new();
            while digit_at(k) {
                den.push(b[k] as char);
                k += 1;
            }
            if let Some(v) = fraction_value(negative, &int_part, &den) {
                value = v;
                j = k;
            }
        }
        out.push(NumberToken {
            start,
            end: j,
            value,
        });
        i = j;
    }
    out
}

/// Canonical form of a decimal given as digit strings.
fn canonical_decimal(negative: bool, int_part: &str, frac_part: &str) -> String {
    let int = int_part.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac_part.trim_end_matches('0');
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if negative && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

/// Decimal value of `num/den`, at most ten decimals; `None` for a zero denominator.
fn fraction_value(negative: bool, num: &str, den: &str) -> Option<String> {
    let n: f64 = num.parse().ok()?;
    let d: f64 = den.parse().ok()?;
    if d == 0.0 {
        return None;
    }
    let v = n / d;
    let text = format!("{v:.10}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    Some(canonical_decimal(negative, int, frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s)
    }

    #[test]
    fn answer_is_marker_with_decoration() {
        assert_eq!(
            ex("She pays 3 * 6 = 18. The answer is $18.").as_deref(),
            Some("18")
        );
        assert_eq!(
            ex("The answer is: 1,234.50 dollars").as_deref(),
            Some("1234.5")
        );
        assert_eq!(ex("the final answer is -3").as_deref(), Some("-3"));
        assert_eq!(ex("Answer: 42").as_deref(), Some("42"));
    }

    #[test]
    fn last_marker_wins_over_earlier_ones_and_bare_numbers() {
        let t = "The answer is 10.\nWait, 4 more. The answer is 14. Then 99 people cheered.";
        assert_eq!(ex(t).as_deref(), Some("14"));
        assert_eq!(ex("\\boxed{5} but actually #### 6").as_deref(), Some("6"));
        assert_eq!(ex("#### 6\nThe answer is 7").as_deref(), Some("7"));
    }

    #[test]
    fn equation_after_marker_takes_the_result() {
        assert_eq!(ex("The answer is 5 + 3 = 8 apples").as_deref(), Some("8"));
    }

    #[test]
    fn marker_without_number_falls_back() {
        assert_eq!(
            ex("He has 12 cards. The answer is unclear").as_deref(),
            Some("12")
        );
        assert_eq!(ex("The answer is\n27").as_deref(), Some("27"));
    }

    #[test]
    fn boxed_forms() {
        assert_eq!(ex("\\boxed{72}").as_deref(), Some("72"));
        assert_eq!(ex("so \\boxed{\\$1,000}").as_deref(), Some("1000"));
        assert_eq!(ex("\\boxed{\\frac{3}{4}}").as_deref(), Some("0.75"));
        assert_eq!(ex("\\boxed{-\\dfrac{1}{2}}").as_deref(), Some("-0.5"));
        assert_eq!(ex("\\boxed{12 and text").as_deref(), Some("12"));
    }

    #[test]
    fn hash_marker() {
        assert_eq!(ex("work 3+4=7\n#### 7").as_deref(), Some("7"));
        assert_eq!(ex("####: 1,500").as_deref(), Some("1500"));
    }

    #[test]
    fn last_number_fallback() {
        assert_eq!(ex("3 apples and 4 pears make 7.").as_deref(), Some("7"));
        assert_eq!(ex("It costs $2.50 each, so 10.00").as_deref(), Some("10"));
        assert_eq!(ex("nothing"), None);
        assert_eq!(ex(""), None);
    }

    #[test]
    fn minus_is_a_sign_only_outside_words_and_numbers() {
        assert_eq!(ex("10-3").as_deref(), Some("3"));
        assert_eq!(ex("it dropped to -5").as_deref(), Some("-5"));
        assert_eq!(ex("x-2").as_deref(), Some("2"));
        assert_eq!(ex("owes -$40").as_deref(), Some("-40"));
    }

    #[test]
    fn commas_only_group_thousands() {
        assert_eq!(ex("1,2,3").as_deref(), Some("3"));
        assert_eq!(ex("total 12,345,678").as_deref(), Some("12345678"));
        assert_eq!(ex("numbers 1,23").as_deref(), Some("23"));
    }

    #[test]
    fn unicode_text_around_numbers() {
        assert_eq!(ex("Ça coûte 5 € — réponse 7 ✓").as_deref(), Some("7"));
    }

    #[test]
    fn normalize_cases() {
        assert_eq!(normalize_number("1,234.50").as_deref(), Some("1234.5"));
        assert_eq!(normalize_number(" $18 ").as_deref(), Some("18"));
        assert_eq!(normalize_number("18.").as_deref(), Some("18"));
        assert_eq!(normalize_number("007").as_deref(), Some("7"));
        assert_eq!(normalize_number("0.500").as_deref(), Some("0.5"));
        assert_eq!(normalize_number(".5").as_deref(), Some("0.5"));
        assert_eq!(normalize_number("-0").as_deref(), Some("0"));
        assert_eq!(normalize_number("25%").as_deref(), Some("25"));
        assert_eq!(normalize_number("18 dollars").as_deref(), Some("18"));
        assert_eq!(normalize_number("3/4").as_deref(), Some("0.75"));
        assert_eq!(normalize_number("-6/3").as_deref(), Some("-2"));
        assert_eq!(normalize_number("1/3").as_deref(), Some("0.3333333333"));
        assert_eq!(normalize_number("€5").as_deref(), Some("5"));
        assert_eq!(normalize_number("5/0"), None);
        assert_eq!(normalize_number(""), None);
        assert_eq!(normalize_number("abc"), None);
        assert_eq!(normalize_number("1 2"), None);
        assert_eq!(normalize_number("x = 3"), None);
    }

    #[test]
    fn match_cases() {
        assert!(answers_match("18", "18.0"));
        assert!(answers_match("$1,000", "1000"));
        assert!(answers_match("0.75", "3/4"));
        assert!(answers_match("1/3", "0.333333333"));
        assert!(!answers_match("18", "-18"));
        assert!(!answers_match("0.1", "0.2"));
        assert!(answers_match(" Yes", "yes"));
        assert!(!answers_match("yes", "18"));
        assert!(answers_match("123456789012", "123,456,789,012"));
    }

    #[test]
    fn gold_cases() {
        assert_eq!(gold_answer("a\nb = 5\n#### 5").as_deref(), Some("5"));
        assert_eq!(gold_answer("#### 1,234").as_deref(), Some("1234"));
        assert_eq!(gold_answer("#### -7").as_deref(), Some("-7"));
        assert_eq!(gold_answer("####  2.5\n").as_deref(), Some("2.5"));
        assert_eq!(gold_answer("#### 12 apples, hmm 13").as_deref(), Some("12"));
        assert_eq!(gold_answer("no marker 5"), None);
        assert_eq!(gold_answer("#### none"), None);
    }
}
