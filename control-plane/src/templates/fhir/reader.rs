//! A JSON object read member by member: every member taken is accounted for, and
//! [`Obj::finish`] turns whatever is left into a 422 naming its FHIR path, so an import can
//! never drop an element it does not understand.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use super::unsupported;
use super::values::{check, Prim};
use crate::error::ApiResult;

/// One JSON object of the input and its FHIR path (`Questionnaire.item[0]`).
pub struct Obj<'a> {
    map: &'a Map<String, Json>,
    path: String,
    taken: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    /// 422 when `json` is not an object.
    pub fn new(json: &'a Json, path: &str) -> ApiResult<Self> {
        let map = json
            .as_object()
            .ok_or_else(|| unsupported(path, "must be a JSON object"))?;
        Ok(Self {
            map,
            path: path.to_owned(),
            taken: BTreeSet::new(),
        })
    }

    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// The path of member `key`.
    pub fn child(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// Members not taken yet.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.map
            .keys()
            .map(String::as_str)
            .filter(|k| !self.taken.contains(k))
    }

    /// Takes member `key`; JSON `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<&'a Json> {
        let (k, v) = self.map.get_key_value(key)?;
        self.taken.insert(k.as_str());
        (!v.is_null()).then_some(v)
    }

    /// A string primitive member.
    pub fn text(&mut self, key: &str, prim: Prim) -> ApiResult<Option<String>> {
        let path = self.child(key);
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        let s = v
            .as_str()
            .ok_or_else(|| unsupported(&path, "must be a string"))?;
        check(prim, s, &path)?;
        Ok(Some(s.to_owned()))
    }

    /// A boolean member; absent is `false`.
    pub fn flag(&mut self, key: &str) -> ApiResult<bool> {
        let path = self.child(key);
        match self.take(key) {
            None => Ok(false),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| unsupported(&path, "must be true or false")),
        }
    }

    /// An array member with the path of each element; absent is empty.
    pub fn list(&mut self, key: &str) -> ApiResult<Vec<(String, &'a Json)>> {
        let path = self.child(key);
        let Some(v) = self.take(key) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| unsupported(&path, "must be an array"))?;
        if items.is_empty() {
            return Err(unsupported(&path, "FHIR arrays cannot be empty"));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect())
    }

    /// 422 naming the first member nobody took.
    pub fn finish(self) -> ApiResult<()> {
        match self.keys().next() {
            None => Ok(()),
            Some(key) => Err(unsupported(
                &self.child(key),
                "this element is not supported by medgate templates",
            )),
        }
    }
}
