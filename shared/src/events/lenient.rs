//! Deserializers that accept every representation AWS is documented (or observed) to send.

use serde::{Deserialize, Deserializer};

/// A number, or text that may hold one.
enum NumberOrString {
    Integer(i64),
    Float(f64),
    Text(String),
}

// Read by a visitor, not as an untagged enum: that one buffers the value, and a number with a
// fraction (a threshold, `5.0`) first failed as an integer, whose error message was formatted and
// dropped, at every field.
impl<'de> Deserialize<'de> for NumberOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumberOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumberOrString, E> {
                Ok(NumberOrString::Integer(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumberOrString, E> {
                // Beyond i64, as a float (as the untagged enum read it).
                Ok(i64::try_from(v).map_or(NumberOrString::Float(v as f64), NumberOrString::Integer))
            }
            fn visit_f64<E>(self, v: f64) -> Result<NumberOrString, E> {
                Ok(NumberOrString::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<NumberOrString, E> {
                Ok(NumberOrString::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<NumberOrString, E> {
                Ok(NumberOrString::Text(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn number_text(value: NumberOrString) -> String {
    match value {
        NumberOrString::Integer(i) => i.to_string(),
        NumberOrString::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        NumberOrString::Float(f) => f.to_string(),
        NumberOrString::Text(s) => s,
    }
}

/// A `version`-like field sent as `1`, `4.0` or `"1"`: normalised to its text (`"1"`, `"4"`).
pub fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<NumberOrString>::deserialize(d)?.map(number_text))
}

/// A whole number sent as `1`, `1.0` or `"1"`.
pub fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<NumberOrString>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrString::Integer(i)) => u64::try_from(i)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected a non-negative whole number, got {i}"))),
        Some(NumberOrString::Float(f)) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
        Some(NumberOrString::Float(f)) => {
            Err(D::Error::custom(format!("expected a non-negative whole number, got {f}")))
        }
        Some(NumberOrString::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(NumberOrString::Text(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| Some(f as u64))
            .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {s:?}"))),
    }
}

/// A decimal number sent as a number or as text; `""` and `null` mean absent.
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    match Option::<NumberOrString>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrString::Integer(i)) => Ok(Some(i as f64)),
        Some(NumberOrString::Float(f)) => Ok(Some(f)),
        Some(NumberOrString::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(NumberOrString::Text(s)) => {
            s.trim().parse::<f64>().map(Some).map_err(|_| D::Error::custom(format!("expected a number, got {s:?}")))
        }
    }
}

/// An object only: a derived struct would also read a JSON array, field by field, which no AWS
/// event sends and which `Value::pointer` (how a shape is told) does not see as one.
pub fn map_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct Object<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object(std::marker::PhantomData))
}

/// [`map_only`] for each element of a list.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Element<T>(T);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Element<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            map_only(d).map(Element)
        }
    }
    Ok(Vec::<Element<T>>::deserialize(d)?.into_iter().map(|e| e.0).collect())
}

/// `null` is read as the type's default (an empty list, an empty map, an empty string).
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string where AWS sometimes sends `""` for "not set": empty becomes `None`.
pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

/// A boolean sent as `true` or as `"true"`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Text(String),
    }
    match Option::<BoolOrString>::deserialize(d)? {
        None => Ok(None),
        Some(BoolOrString::Bool(b)) => Ok(Some(b)),
        Some(BoolOrString::Text(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            "" => Ok(None),
            _ => Err(D::Error::custom(format!("expected true or false, got {s:?}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Versioned {
        #[serde(default, deserialize_with = "version")]
        version: Option<String>,
        #[serde(default, deserialize_with = "whole_number")]
        attempt: Option<u64>,
    }

    fn read(json: &str) -> Versioned {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn version_arrives_as_integer_float_or_string() {
        assert_eq!(read(r#"{"version": 1}"#).version.as_deref(), Some("1"));
        assert_eq!(read(r#"{"version": 4.0}"#).version.as_deref(), Some("4"));
        assert_eq!(read(r#"{"version": "1"}"#).version.as_deref(), Some("1"));
        assert_eq!(read(r#"{"version": null}"#).version, None);
        assert_eq!(read(r#"{}"#).version, None);
    }

    #[test]
    fn numbers_read_as_every_type_json_has_them_in_and_nothing_else() {
        #[derive(Deserialize)]
        struct Reading {
            #[serde(default, deserialize_with = "decimal")]
            threshold: Option<f64>,
        }
        let threshold = |json: &str| serde_json::from_str::<Reading>(json).map(|r| r.threshold);
        assert_eq!(threshold(r#"{"threshold": 5}"#).unwrap(), Some(5.0));
        assert_eq!(threshold(r#"{"threshold": -5}"#).unwrap(), Some(-5.0));
        assert_eq!(threshold(r#"{"threshold": 18446744073709551615}"#).unwrap(), Some(u64::MAX as f64));
        assert_eq!(threshold(r#"{"threshold": 2.5e1}"#).unwrap(), Some(25.0));
        assert_eq!(threshold(r#"{"threshold": " 7.5 "}"#).unwrap(), Some(7.5));
        assert!(threshold(r#"{"threshold": "a\u0020b"}"#).unwrap_err().to_string().contains("\"a b\""));
        assert_eq!(threshold(r#"{"threshold": ""}"#).unwrap(), None);
        assert_eq!(threshold(r#"{"threshold": null}"#).unwrap(), None);
        for wrong in [r#"{"threshold": true}"#, r#"{"threshold": [1]}"#, r#"{"threshold": {"v": 1}}"#] {
            assert!(threshold(wrong).is_err(), "{wrong}");
        }
        // The same through a tree, as a replayed event is read.
        let tree: Reading = serde_json::from_value(serde_json::json!({"threshold": 3})).unwrap();
        assert_eq!(tree.threshold, Some(3.0));
    }

    #[test]
    fn attempt_accepts_float_and_text_but_not_fractions() {
        assert_eq!(read(r#"{"attempt": 2.0}"#).attempt, Some(2));
        assert_eq!(read(r#"{"attempt": "3"}"#).attempt, Some(3));
        assert!(serde_json::from_str::<Versioned>(r#"{"attempt": 1.5}"#).is_err());
        assert!(serde_json::from_str::<Versioned>(r#"{"attempt": -1}"#).is_err());
    }
}
