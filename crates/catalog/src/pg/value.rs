//! The bridge between the shared row conversions (`crate::row`, written
//! over SQLite's value kinds) and PostgreSQL: parameters go out as
//! [`Param`], rows come back as [`RawRow`], so both backends convert
//! records with the same code and name the same columns in errors.

use crate::row::RawRow;
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type};
use rusqlite::types::Value;
use std::error::Error;

type BoxError = Box<dyn Error + Sync + Send>;

/// One statement parameter. NULL fits any column; integers also fill
/// BOOLEAN columns (the shared rows write flags as 0/1).
#[derive(Debug)]
pub struct Param(pub Value);

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) if *ty == Type::BOOL => (*i != 0).to_sql_checked(ty, out),
            Value::Integer(i) => i.to_sql_checked(ty, out),
            Value::Real(r) => r.to_sql_checked(ty, out),
            Value::Text(t) => t.to_sql_checked(ty, out),
            Value::Blob(b) => b.to_sql_checked(ty, out),
        }
    }

    /// Checked per value in `to_sql` (each variant's own `accepts`).
    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.to_sql(ty, out)
    }
}

/// Parameters as the `postgres` client takes them.
pub fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Text parameters (ids, names, states).
pub fn texts<const N: usize>(values: [String; N]) -> Vec<Param> {
    values.into_iter().map(|t| Param(Value::Text(t))).collect()
}

/// A PostgreSQL row as the shared conversions read it: BOOLEAN as 0/1,
/// every integer as i64, DOUBLE PRECISION as real, text as text.
pub fn raw_row(row: &postgres::Row) -> Result<RawRow, String> {
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let ty = column.type_();
            let value = if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)
                    .map(|v| v.map(|b| Value::Integer(i64::from(b))))
            } else if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)
                    .map(|v| v.map(Value::Integer))
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map(|v| v.map(|n| Value::Integer(n.into())))
            } else if *ty == Type::FLOAT8 {
                row.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real))
            } else {
                row.try_get::<_, Option<String>>(i)
                    .map(|v| v.map(Value::Text))
            };
            value
                .map(|v| v.unwrap_or(Value::Null))
                .map_err(|e| format!("column {}: {e}", column.name()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RawRow(values))
}

/// The shared SQL (written for SQLite) in PostgreSQL's dialect:
/// placeholders `?N` become `$N`, and the insertion order SQLite keeps
/// in `rowid` is the `seq` column here.
pub fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '?' if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out.replace("rowid", "seq")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dialect_rewrites_placeholders_and_rowid() {
        assert_eq!(
            super::dialect("SELECT a FROM t WHERE x = ?1 AND y = ?12 ORDER BY created_at, rowid"),
            "SELECT a FROM t WHERE x = $1 AND y = $12 ORDER BY created_at, seq"
        );
    }
}
