//! Decoding the device's defmt frames (the `vox/defmt` topic of a firmware
//! built with `defmt-conduit`) into text with the firmware's ELF, which
//! holds defmt's table of format strings.

use std::path::Path;

/// The defmt table of one firmware ELF.
pub struct DefmtTable {
    table: defmt_decoder::Table,
}

impl DefmtTable {
    /// Reads the table from the firmware ELF at `elf`; `Err` says why not
    /// (unreadable, or built without defmt).
    pub fn from_elf(elf: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
        match defmt_decoder::Table::parse(&bytes) {
            Ok(Some(table)) => Ok(Self { table }),
            Ok(None) => Err(format!("{} has no defmt table (built without defmt?)", elf.display())),
            Err(e) => Err(format!("cannot read the defmt table of {}: {e}", elf.display())),
        }
    }

    /// One frame as text (its level and message); a frame this table does
    /// not describe (another build of the firmware) says so.
    pub fn decode(&self, frame: &[u8]) -> String {
        match self.table.decode(frame) {
            Ok((frame, _)) => match frame.level() {
                Some(level) => format!("{} {}", level.as_str().to_uppercase(), frame.display_message()),
                None => frame.display_message().to_string(),
            },
            Err(_) => format!("(a defmt frame of {} bytes this ELF does not describe)", frame.len()),
        }
    }
}
