//! Element types accepted for gradient rows and their exact widening to f64.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use std::sync::OnceLock;

/// Storage type of gradient rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RowDType {
    F64,
    F32,
    F16,
    BF16,
}

impl RowDType {
    /// The name used in files, errors and the Python API.
    pub fn name(self) -> &'static str {
        match self {
            RowDType::F64 => "float64",
            RowDType::F32 => "float32",
            RowDType::F16 => "float16",
            RowDType::BF16 => "bfloat16",
        }
    }

    /// Parses a dtype name as the Python API and files spell it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "float64" | "f64" | "F64" => Some(RowDType::F64),
            "float32" | "f32" | "F32" => Some(RowDType::F32),
            "float16" | "f16" | "F16" => Some(RowDType::F16),
            "bfloat16" | "bf16" | "BF16" => Some(RowDType::BF16),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            RowDType::F64 => 8,
            RowDType::F32 => 4,
            RowDType::F16 | RowDType::BF16 => 2,
        }
    }
}

/// An element that widens exactly to f64 (every f32, f16 and bf16 value is an f64 value).
pub trait Widen: Copy + Send + Sync {
    /// Whether [`narrow`](Widen::narrow) is exact (true for f32, f16 and bf16).
    const NARROW_EXACT: bool;
    /// The value as f64 (always exact).
    fn widen(self) -> f64;
    /// The value as f32.
    fn narrow(self) -> f32;
    /// Widens a row (any stride) into `out`.
    fn widen_row(row: ndarray::ArrayView1<'_, Self>, out: &mut [f64]) {
        for (o, v) in out.iter_mut().zip(row.iter()) {
            *o = v.widen();
        }
    }
    /// Narrows a row (any stride) into `out`.
    fn narrow_row(row: ndarray::ArrayView1<'_, Self>, out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(row.iter()) {
            *o = v.narrow();
        }
    }
}

impl Widen for f64 {
    const NARROW_EXACT: bool = false;
    #[inline(always)]
    fn narrow(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
}

impl Widen for f32 {
    const NARROW_EXACT: bool = true;
    #[inline(always)]
    fn narrow(self) -> f32 {
        self
    }
    #[inline(always)]
    fn widen(self) -> f64 {
        self as f64
    }
}

/// IEEE half-precision bits (numpy float16 viewed as uint16).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16Bits(pub u16);

/// bfloat16 bits (ml_dtypes.bfloat16 or torch.bfloat16 viewed as uint16).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16Bits(pub u16);

fn f16_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|b| f16::from_bits(b).to_f32()).collect())
}

/// A contiguous slice of half-precision bits as `half::f16` values.
fn as_f16_slice(bits: &[F16Bits]) -> &[f16] {
    // SAFETY: F16Bits and half::f16 are both repr(transparent) over u16.
    unsafe { std::slice::from_raw_parts(bits.as_ptr() as *const f16, bits.len()) }
}

impl Widen for F16Bits {
    const NARROW_EXACT: bool = true;
    fn widen_row(row: ndarray::ArrayView1<'_, Self>, out: &mut [f64]) {
        match row.as_slice() {
            // half converts contiguous slices with F16C vector instructions where the CPU has them.
            Some(s) => as_f16_slice(s).convert_to_f64_slice(out),
            None => out
                .iter_mut()
                .zip(row.iter())
                .for_each(|(o, v)| *o = v.widen()),
        }
    }
    fn narrow_row(row: ndarray::ArrayView1<'_, Self>, out: &mut [f32]) {
        match row.as_slice() {
            Some(s) => as_f16_slice(s).convert_to_f32_slice(out),
            None => out
                .iter_mut()
                .zip(row.iter())
                .for_each(|(o, v)| *o = v.narrow()),
        }
    }
    #[inline(always)]
    fn narrow(self) -> f32 {
        f16_table()[self.0 as usize]
    }
    #[inline(always)]
    fn widen(self) -> f64 {
        // A 256 KiB table stays in L2 and beats software conversion on machines without F16C use.
        f16_table()[self.0 as usize] as f64
    }
}

impl Widen for Bf16Bits {
    const NARROW_EXACT: bool = true;
    #[inline(always)]
    fn narrow(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
    #[inline(always)]
    fn widen(self) -> f64 {
        bf16::from_bits(self.0).to_f32() as f64
    }
}

/// Decodes little-endian bytes of `dtype` into f64 values, appending to `out`.
pub fn widen_le_bytes(dtype: RowDType, bytes: &[u8], out: &mut [f64]) {
    match dtype {
        RowDType::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(c.try_into().unwrap());
            }
        }
        RowDType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().unwrap()) as f64;
            }
        }
        RowDType::F16 => {
            let t = f16_table();
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = t[u16::from_le_bytes([c[0], c[1]]) as usize] as f64;
            }
        }
        RowDType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_types_widen_exactly() {
        for v in [0.0f32, -1.5, 65504.0, 6.1e-5, 3.140625] {
            assert_eq!(
                F16Bits(f16::from_f32(v).to_bits()).widen(),
                f16::from_f32(v).to_f64()
            );
            assert_eq!(
                Bf16Bits(bf16::from_f32(v).to_bits()).widen(),
                bf16::from_f32(v).to_f64()
            );
        }
        assert!(F16Bits(f16::NAN.to_bits()).widen().is_nan());
        assert!(Bf16Bits(bf16::INFINITY.to_bits()).widen().is_infinite());
    }

    #[test]
    fn le_bytes_match_scalar_widening() {
        let vals = [1.0f32, -2.25, 1e-3];
        let bytes: Vec<u8> = vals
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_bits().to_le_bytes())
            .collect();
        let mut out = vec![0.0; 3];
        widen_le_bytes(RowDType::BF16, &bytes, &mut out);
        for (o, v) in out.iter().zip(vals) {
            assert_eq!(*o, bf16::from_f32(v).to_f64());
        }
    }
}

/// Reinterprets a view of raw 16-bit words as half-precision values (any strides).
pub fn view_as_f16(view: ndarray::ArrayView2<'_, u16>) -> ndarray::ArrayView2<'_, F16Bits> {
    // SAFETY: F16Bits is repr(transparent) over u16, so layout, size and alignment are identical,
    // and the returned view borrows the same data for the same lifetime.
    unsafe { view.raw_view().cast::<F16Bits>().deref_into_view() }
}

/// Reinterprets a view of raw 16-bit words as bfloat16 values (any strides).
pub fn view_as_bf16(view: ndarray::ArrayView2<'_, u16>) -> ndarray::ArrayView2<'_, Bf16Bits> {
    // SAFETY: as in `view_as_f16`; Bf16Bits is repr(transparent) over u16.
    unsafe { view.raw_view().cast::<Bf16Bits>().deref_into_view() }
}
