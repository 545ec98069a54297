//! `Table::write`: puts and deletes of one typed table in one atomic batch.
#![allow(clippy::unwrap_used)]

mod common;

use serde::{Deserialize, Serialize};
use tresor::typed::{IndexDef, KeyPart, TableDef};
use tresor::{Error, Order};

use common::memory_store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: String,
    tag: String,
    group: String,
}

static ITEMS: TableDef<Item> = TableDef {
    name: "items",
    primary_key: |i| i.id.as_bytes().to_vec(),
    indexes: &[
        IndexDef {
            name: "tag",
            unique: true,
            keys: |i| vec![vec![KeyPart::id(&i.tag)]],
        },
        IndexDef {
            name: "group",
            unique: false,
            keys: |i| vec![vec![KeyPart::id(&i.group)]],
        },
    ],
};

fn item(id: &str, tag: &str, group: &str) -> Item {
    Item {
        id: id.into(),
        tag: tag.into(),
        group: group.into(),
    }
}

async fn group(t: tresor::Table<'_, Item>, g: &str) -> Vec<String> {
    let mut ids: Vec<String> = t
        .scan("group", &[KeyPart::id(g)], Order::Ascending, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn puts_and_deletes_land_together_with_their_index_entries() {
    let store = memory_store().await;
    let t = store.table(&ITEMS);
    t.put_many(&[item("a", "ta", "g"), item("b", "tb", "g")])
        .await
        .unwrap();
    let existed = t
        .write(
            &[item("c", "tc", "g"), item("d", "td", "h")],
            &[b"a".to_vec(), b"missing".to_vec()],
        )
        .await
        .unwrap();
    assert_eq!(existed, 1, "one of the two deleted keys existed");
    assert_eq!(t.get("a").await.unwrap(), None);
    assert_eq!(group(t, "g").await, vec!["b", "c"]);
    assert_eq!(group(t, "h").await, vec!["d"]);
    // The deleted record's unique entry is free again.
    t.put(&item("e", "ta", "g")).await.unwrap();
}

#[tokio::test]
async fn a_put_wins_over_a_delete_of_the_same_key() {
    let store = memory_store().await;
    let t = store.table(&ITEMS);
    t.put(&item("a", "t1", "old")).await.unwrap();
    t.write(&[item("a", "t2", "new")], &[b"a".to_vec()])
        .await
        .unwrap();
    assert_eq!(t.get("a").await.unwrap(), Some(item("a", "t2", "new")));
    assert!(group(t, "old").await.is_empty());
    assert_eq!(group(t, "new").await, vec!["a"]);
}

#[tokio::test]
async fn a_unique_violation_writes_nothing() {
    let store = memory_store().await;
    let t = store.table(&ITEMS);
    t.put_many(&[item("a", "ta", "g"), item("b", "tb", "g")])
        .await
        .unwrap();
    let err = t
        .write(&[item("c", "tb", "g")], &[b"a".to_vec()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err:?}");
    assert_eq!(t.get("a").await.unwrap(), Some(item("a", "ta", "g")));
    assert_eq!(t.get("c").await.unwrap(), None);
    assert_eq!(group(t, "g").await, vec!["a", "b"]);
}
