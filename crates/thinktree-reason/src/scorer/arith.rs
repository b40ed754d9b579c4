//! Checking the arithmetic a step writes down.
//!
//! Small models often reason in the right direction and then write `3 * 4 = 14`. Each
//! `a op b = c` in the text (and every GSM8K-style `<<a*b=c>>` annotation) is evaluated
//! exactly; the result must equal `c` up to the precision `c` is written with.

/// Equations found in a text: how many were checked and how many were right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EquationCheck {
    /// Equations with an arithmetic left side that could be evaluated.
    pub checked: usize,
    /// Of those, the ones whose stated result is correct.
    pub correct: usize,
}

/// Finds and checks every equation in `text`.
pub fn check_equations(text: &str) -> EquationCheck {
    let mut out = EquationCheck::default();
    let chars: Vec<char> = text.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        if ch != '=' {
            continue;
        }
        let lhs = left_expression(&chars[..i]);
        let Some(rhs) = leading_number(&chars[i + 1..]) else {
            continue;
        };
        let Some(value) = eval(&lhs) else { continue };
        if !lhs.chars().any(|c| "+-*/x×÷".contains(c)) {
            continue; // "x = 5" or a bare restatement is not arithmetic
        }
        out.checked += 1;
        if close_enough(value, &rhs) {
            out.correct += 1;
        }
    }
    out
}

fn is_expr_char(c: char) -> bool {
    c.is_ascii_digit() || " .,+-*/x×÷()$".contains(c)
}

/// The arithmetic just before an `=`: the longest run of expression characters, trimmed
/// to start at a number or parenthesis.
fn left_expression(before: &[char]) -> String {
    let mut start = before.len();
    while start > 0 && is_expr_char(before[start - 1]) {
        start -= 1;
    }
    let s: String = before[start..].iter().collect();
    let s = s.trim_start_matches(|c: char| !(c.is_ascii_digit() || c == '(' || c == '$'));
    s.trim().to_string()
}

/// The number right after an `=` (currency, spaces and thousands commas allowed).
fn leading_number(after: &[char]) -> Option<String> {
    let mut it = after
        .iter()
        .copied()
        .skip_while(|c| *c == ' ' || *c == '$')
        .peekable();
    let mut s = String::new();
    if it.peek() == Some(&'-') {
        s.push('-');
        it.next();
    }
    let mut digits = 0;
    while let Some(&c) = it.peek() {
        if c.is_ascii_digit() {
            digits += 1;
            s.push(c);
        } else if c == ',' || c == '.' {
            // Only part of the number when a digit follows ("1,200" / "2.5", not "5.").
            let mut look = it.clone();
            look.next();
            if !look.peek().is_some_and(|d| d.is_ascii_digit()) {
                break;
            }
            if c == '.' {
                s.push('.');
            }
        } else {
            break;
        }
        it.next();
    }
    (digits > 0).then_some(s)
}

fn close_enough(value: f64, written: &str) -> bool {
    let Ok(w) = written.parse::<f64>() else {
        return false;
    };
    let decimals = written.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
    // Exact up to float noise, or a rounding of the true value to the written precision
    // (a half-way value like 3.5 written as 3 is not a rounding).
    let eps = 1e-9 * value.abs().max(1.0);
    let diff = (value - w).abs();
    diff <= eps || diff < 0.5 * 10f64.powi(-decimals) - eps
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num(f64),
    Op(char),
    Open,
    Close,
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let cs: Vec<char> = s.chars().filter(|c| *c != '$').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_ascii_digit() || c == '.' {
            let mut num = String::new();
            while i < cs.len() {
                let d = cs[i];
                let next_digit = cs.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if d.is_ascii_digit() || (d == '.' && next_digit) {
                    num.push(d);
                } else if d == ',' && next_digit {
                    // thousands separator
                } else {
                    break;
                }
                i += 1;
            }
            out.push(Tok::Num(num.parse().ok()?));
            continue;
        }
        match c {
            ' ' | ',' => {}
            '+' | '-' => out.push(Tok::Op(c)),
            '*' | 'x' | '×' => out.push(Tok::Op('*')),
            '/' | '÷' => out.push(Tok::Op('/')),
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

/// Evaluates `+ - * /` with precedence and parentheses; None if it is not a well-formed
/// expression or divides by zero.
fn eval(s: &str) -> Option<f64> {
    let toks = tokenize(s)?;
    let mut pos = 0;
    let v = expr(&toks, &mut pos)?;
    (pos == toks.len() && v.is_finite()).then_some(v)
}

fn expr(t: &[Tok], pos: &mut usize) -> Option<f64> {
    let mut v = term(t, pos)?;
    while let Some(Tok::Op(op @ ('+' | '-'))) = t.get(*pos) {
        *pos += 1;
        let r = term(t, pos)?;
        v = if *op == '+' { v + r } else { v - r };
    }
    Some(v)
}

fn term(t: &[Tok], pos: &mut usize) -> Option<f64> {
    let mut v = atom(t, pos)?;
    while let Some(Tok::Op(op @ ('*' | '/'))) = t.get(*pos) {
        *pos += 1;
        let r = atom(t, pos)?;
        if *op == '*' {
            v *= r;
        } else {
            if r == 0.0 {
                return None;
            }
            v /= r;
        }
    }
    Some(v)
}

fn atom(t: &[Tok], pos: &mut usize) -> Option<f64> {
    match t.get(*pos)? {
        Tok::Num(n) => {
            *pos += 1;
            Some(*n)
        }
        Tok::Op('-') => {
            *pos += 1;
            atom(t, pos).map(|v| -v)
        }
        Tok::Open => {
            *pos += 1;
            let v = expr(t, pos)?;
            if t.get(*pos) != Some(&Tok::Close) {
                return None;
            }
            *pos += 1;
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_plain_and_annotated_equations() {
        let c = check_equations("He has 3 * 4 = 12 apples, then 12 - 2 = 10.");
        assert_eq!(
            c,
            EquationCheck {
                checked: 2,
                correct: 2
            }
        );
        let c = check_equations("So 3 x 4 = 14 apples.");
        assert_eq!(
            c,
            EquationCheck {
                checked: 1,
                correct: 0
            }
        );
        // The annotation is checked; the prose equation before it has no number after `=`.
        let c = check_equations("She pays 2*$1,200=$<<2*1200=2400>>2,400 in total");
        assert_eq!(
            c,
            EquationCheck {
                checked: 1,
                correct: 1
            }
        );
        let c = check_equations("She pays 2 * $1,200 = $2,500.");
        assert_eq!(
            c,
            EquationCheck {
                checked: 1,
                correct: 0
            }
        );
        let c = check_equations("(2 + 3) * 4 = 20 and 10 / 3 = 3.33 and 7 / 2 = 3");
        assert_eq!(
            c,
            EquationCheck {
                checked: 3,
                correct: 2
            }
        );
    }

    #[test]
    fn ignores_non_arithmetic() {
        assert_eq!(
            check_equations("Let x = 5. The answer is 5."),
            EquationCheck::default()
        );
        assert_eq!(
            check_equations("no numbers = here"),
            EquationCheck::default()
        );
        assert_eq!(check_equations("5 / 0 = 3"), EquationCheck::default());
    }
}
