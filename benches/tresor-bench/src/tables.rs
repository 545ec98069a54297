//! `tables FILE`: where the bytes of a redb file go, table by table (redb's own
//! `TableStats`): entries, leaf pages, stored bytes (keys and values), B-tree metadata and
//! fragmentation. Used to size tokens, nonces and indexes deliberately (docs/BENCHMARKS.md).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition, TableHandle};

/// Prints one line per table, then the totals, as a Markdown table.
pub fn run(path: &Path) -> Result<(), String> {
    let db = Database::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    println!(
        "| table | entries | leaf pages | stored bytes | bytes/entry | metadata bytes | fragmented bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut total = [0u64; 5];
    for handle in tx.list_tables().map_err(|e| e.to_string())? {
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(handle.name());
        let table = tx.open_table(def).map_err(|e| e.to_string())?;
        let s = table.stats().map_err(|e| e.to_string())?;
        let n = table.len().map_err(|e| e.to_string())?;
        let row = [
            n,
            s.leaf_pages(),
            s.stored_bytes(),
            s.metadata_bytes(),
            s.fragmented_bytes(),
        ];
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            handle.name(),
            row[0],
            row[1],
            row[2],
            row[2] as f64 / row[0].max(1) as f64,
            row[3],
            row[4]
        );
    }
    println!(
        "| total | {} | {} | {} | | {} | {} |",
        total[0], total[1], total[2], total[3], total[4]
    );
    Ok(())
}
